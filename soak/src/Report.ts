/**
 * The soak's output: a line per round, then a summary of every run by how it
 * ended, the checks, the heap, and the violations. The heap may grow across
 * rounds by a fixed slack plus what `SessionStore.layerMemory()` keeps of every
 * session (it has no way to drop one), and no more.
 *
 * @example
 * ```ts
 * import * as Report from "./Report.js"
 *
 * const report = Report.make()
 * ```
 *
 * @since 0.1.0
 */
import type * as Checks from "./Checks.js"
import type { RunRecord } from "./Driver.js"
import type * as Tools from "./Tools.js"

/** @since 0.1.0 */
export interface Settings {
  readonly seed: number
  readonly rounds: number
  readonly runsPerRound: number
  readonly concurrency: number
}

/** @since 0.1.0 */
export interface Round {
  readonly round: number
  readonly runs: ReadonlyArray<RunRecord>
  readonly findings: ReadonlyArray<Checks.Finding>
  readonly violations: ReadonlyArray<string>
  readonly writesCommitted: number
  readonly modelRequests: number
  readonly heap: number
  /** Most fibers the supervisor saw alive at once during the round (server included). */
  readonly peakFibers: number
  /** JSON size of what the session store keeps of the round's sessions. */
  readonly sessionBytes: number
  readonly millis: number
}

/** Heap growth allowed from the end of the first round to the end of the last, whatever the run count. @since 0.1.0 */
export const heapSlackBytes = 8 * 1024 * 1024

/**
 * Heap allowed per byte of JSON that `SessionStore.layerMemory()` keeps of the sessions (owner, policy,
 * run id, the conversation as message objects). V8 objects take two to three times their JSON size;
 * the bound allows four.
 *
 * @since 0.1.0
 */
export const heapPerSessionJsonByte = 4

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

const tally = (items: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])
}

/** Prints what the soak is about to do. @since 0.1.0 */
export const header = (settings: Settings, isQuick: boolean) =>
  console.log(
    `tether soak${isQuick ? " (quick)" : ""}: seed ${settings.seed}, ${settings.rounds} rounds x ` +
      `${settings.runsPerRound} runs, ${settings.concurrency} in flight ` +
      `(replay with --seed=${settings.seed}${isQuick ? " --quick" : ""})`
  )

/** @since 0.1.0 */
export const make = () => {
  const rounds: Array<Round> = []
  return {
    round: (round: Round) => {
      rounds.push(round)
      const failedChecks = round.findings.filter((f) => !f.isOk).length
      console.log(
        `round ${round.round}: ${round.runs.length} runs in ${(round.millis / 1000).toFixed(1)} s, ` +
          `${round.modelRequests} model requests, ${round.writesCommitted} writes committed, ` +
          `peak ${round.peakFibers} fibers, sessions kept ${(round.sessionBytes / 1024).toFixed(0)} KB JSON, ` +
          `heap ${mb(round.heap)}, ${failedChecks === 0 ? "checks ok" : `${failedChecks} check(s) FAILED`}, ` +
          `${round.violations.length} violation(s)`
      )
    },
    finish: (end: {
      readonly baseline: { readonly fibers: number; readonly heap: number }
      readonly observed: Tools.Observations
      readonly logs: ReadonlyArray<string>
    }): number => {
      const runs = rounds.flatMap((r) => r.runs)
      const violations = rounds.flatMap((r) => r.violations)
      const byOutcome = (outcome: string) => runs.filter((run) => run.outcome === outcome)
      console.log("")
      console.log(`runs started: ${runs.length}`)
      console.log(`  completed: ${byOutcome("Completed").length}`)
      for (const outcome of ["Cancelled", "Failed", "Refused", "Lost"]) {
        const ended = byOutcome(outcome)
        if (ended.length === 0 && outcome !== "Cancelled" && outcome !== "Failed") continue
        const detail = tally(ended.map((run) => run.detail))
          .map(([d, n]) => `${d} ${n}`)
          .join(", ")
        console.log(`  ${outcome.toLowerCase()}: ${ended.length}${detail === "" ? "" : ` (${detail})`}`)
      }
      console.log(
        `  by client action: ${tally(runs.map((r) => `${r.action}->${r.outcome}`))
          .map(([d, n]) => `${d} ${n}`)
          .join(", ")}`
      )
      console.log(
        `late writes of abandoned Promises: ${end.observed.lateWritesRefused} refused, ` +
          `${end.observed.lateWritesAccepted.length} accepted`
      )
      if (end.observed.lateWritesAccepted.length > 0 || end.observed.refusedWhileRunning.length > 0) {
        violations.push(
          ...end.observed.lateWritesAccepted.map((key) => `late write accepted: ${key}`),
          ...end.observed.refusedWhileRunning.map((key) => `write refused while the tool ran: ${key}`)
        )
      }
      console.log("checks after each round (worst round):")
      const names = [...new Set(rounds.flatMap((r) => r.findings.map((f) => f.name)))]
      let failedChecks = 0
      for (const name of names) {
        const found = rounds.flatMap((r) => r.findings.filter((f) => f.name === name))
        const worst = Math.max(...found.map((f) => f.value))
        const isOk = found.every((f) => f.isOk)
        if (!isOk) failedChecks++
        console.log(`  ${isOk ? "ok  " : "FAIL"} ${name}: ${worst} [${found.map((f) => f.note ?? "").join("; ")}]`)
      }
      const first = rounds[0]
      const last = rounds[rounds.length - 1]
      if (first !== undefined && last !== undefined) {
        const sessionsAfterFirst = runs.length - first.runs.length
        const keptAfterFirst = rounds.slice(1).reduce((sum, r) => sum + r.sessionBytes, 0)
        const allowed = heapSlackBytes + heapPerSessionJsonByte * keptAfterFirst
        const growth = last.heap - first.heap
        const isOk = growth <= allowed
        if (!isOk) failedChecks++
        console.log(
          `heap after gc: idle ${mb(end.baseline.heap)}, rounds ${rounds.map((r) => mb(r.heap)).join(" -> ")}; ` +
            `growth from round 1 ${mb(growth)} (${(growth / Math.max(1, sessionsAfterFirst)).toFixed(0)} B/run), ` +
            `allowed ${mb(allowed)} (8 MB + 4 x ${mb(keptAfterFirst)} of sessions kept): ${isOk ? "ok" : "FAIL"}`
        )
      }
      const warnings = tally(end.logs.map((line) => line.slice(0, 120)))
      console.log(`warnings and errors logged: ${end.logs.length}`)
      for (const [line, n] of warnings.slice(0, 5)) console.log(`  ${n} x ${line}`)
      const isLeakLogged = end.logs.some((line) => line.includes("still alive"))
      if (isLeakLogged) violations.push("the core reported fibers still alive after a run ended")
      console.log(`violations: ${violations.length}`)
      for (const line of violations.slice(0, 20)) console.log(`  ${line}`)
      if (violations.length > 20) console.log(`  ... and ${violations.length - 20} more`)
      const isOk = violations.length === 0 && failedChecks === 0
      console.log(isOk ? "soak passed" : "soak FAILED")
      return isOk ? 0 : 1
    }
  }
}
