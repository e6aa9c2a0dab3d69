/**
 * What must hold once a round's runs have all ended: nothing of them still
 * runs (registry, fibers, model responses, child processes, abandoned
 * Promises), the writes of every run that did not complete were never
 * committed, and every completed run's writes are all there. Each check waits
 * a bounded time for the state to settle, then reports what it found.
 *
 * @example
 * ```ts
 * import { performance } from "node:perf_hooks"
import { Effect } from "effect"
 * import * as Checks from "./Checks.js"
 *
 * const registryIsEmpty = Checks.settle("runs still registered", Effect.succeed(0), "5 seconds")
 * ```
 *
 * @since 0.1.0
 */
import { performance } from "node:perf_hooks"
import { Effect } from "effect"
import type { Duration } from "effect"
import type { RunRecord } from "./Driver.js"
import * as Tools from "./Tools.js"

/** One figure a check measured and whether it passed. @since 0.1.0 */
export interface Finding {
  readonly name: string
  readonly value: number
  readonly isOk: boolean
  readonly note?: string | undefined
}

/**
 * Polls `measure` every 20 ms until it reads 0 or `within` passed; the
 * finding is the last value read.
 *
 * @since 0.1.0
 */
export const settle = (
  name: string,
  measure: Effect.Effect<number>,
  within: Duration.DurationInput
): Effect.Effect<Finding> => {
  const untilZero: Effect.Effect<number> = Effect.flatMap(measure, (value) =>
    value === 0
      ? Effect.succeed(0)
      : Effect.zipRight(
          Effect.sleep("20 millis"),
          Effect.suspend(() => untilZero)
        )
  )
  return Effect.gen(function* () {
    const startedAt = performance.now()
    const settled = yield* Effect.timeoutOption(untilZero, within)
    const value = settled._tag === "Some" ? settled.value : yield* measure
    return { name, value, isOk: value === 0, note: `${(performance.now() - startedAt).toFixed(0)} ms` }
  })
}

/**
 * Compares the committed rows of the tools' table with the runs: none for a
 * run that did not complete, and for a completed one exactly the writes it
 * staged (as many as its outcome says it committed).
 *
 * @since 0.1.0
 */
export const writes = (
  rows: ReadonlyArray<readonly [key: string, value: unknown]>,
  runs: ReadonlyArray<RunRecord>,
  observed: Tools.Observations
): {
  readonly findings: ReadonlyArray<Finding>
  readonly violations: ReadonlyArray<string>
  readonly committed: number
} => {
  const bySession = new Map<string, Set<string>>()
  for (const [key] of rows) {
    const session = Tools.sessionOf(key)
    const keys = bySession.get(session) ?? new Set<string>()
    keys.add(key)
    bySession.set(session, keys)
  }
  const violations: Array<string> = []
  let leaked = 0
  let missing = 0
  let committed = 0
  for (const run of runs) {
    const found = bySession.get(run.sessionId) ?? new Set<string>()
    if (run.outcome !== "Completed") {
      if (found.size > 0)
        violations.push(`${run.sessionId} ended ${run.outcome} but committed ${[...found].join(", ")}`)
      leaked += found.size
      continue
    }
    committed += found.size
    const staged = observed.staged.get(run.sessionId) ?? new Set<string>()
    const absent = [...staged].filter((key) => !found.has(key))
    if (absent.length > 0) violations.push(`${run.sessionId} completed but lost ${absent.join(", ")}`)
    if (found.size !== run.writesCommitted) {
      violations.push(`${run.sessionId} reports ${run.writesCommitted} writes committed, the table has ${found.size}`)
    }
    missing += absent.length
  }
  return {
    findings: [
      { name: "writes committed by runs that did not complete", value: leaked, isOk: leaked === 0 },
      { name: "writes of completed runs missing", value: missing, isOk: missing === 0 }
    ],
    violations,
    committed
  }
}
