/** Named assertions: a program collects them and fails (a non-zero exit, or a 500 in a worker) if any is false. */
export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

export const check = (name: string, ok: boolean, detail: unknown = ""): Check => ({
  name,
  ok,
  detail: typeof detail === "string" ? detail : JSON.stringify(detail)
})

/** The report of a program's checks, its summary last; throws it (so the runtime exits non-zero) if one failed. */
export const verdict = (program: string, checks: ReadonlyArray<Check>): string => {
  const failed = checks.filter((c) => !c.ok)
  const lines = checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name}${c.detail === "" ? "" : ` (${c.detail})`}`)
  const summary =
    failed.length === 0 && checks.length > 0
      ? `${program}: all ${checks.length} checks passed`
      : `${program}: ${failed.length} of ${checks.length} checks FAILED`
  const report = [...lines, summary].join("\n")
  if (failed.length > 0 || checks.length === 0) throw new Error(report)
  return report
}
