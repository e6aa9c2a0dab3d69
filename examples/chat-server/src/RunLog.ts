/**
 * The example's own log: one line when a run starts, one when it ends (how,
 * why, tokens, writes, time), and when the server stops, one line saying what
 * the shutdown cancelled. It wraps `RunRegistry`, so it sees every run the
 * session routes start; the library's own log lines stay below `LOG_LEVEL`.
 *
 * ```text
 * 10:42:07 run_mx5o_0 started (session chat-4f9k)
 * 10:42:11 run_mx5o_0 cancelled: the user pressed Stop (UserAbort) · 2534 tokens · 1 write rolled back · 4.1 s
 * tether chat: shut down; 1 run cancelled (Shutdown), 1 write rolled back
 * ```
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RunOutcome, RunRegistry } from "@tether/core"
 * import * as RunLog from "./RunLog.js"
 *
 * const registry = RunLog.layer.pipe(Layer.provide(RunRegistry.layer()))
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Console, Effect, FiberSet, Layer, Ref } from "effect"
import { CancelReason, RunRegistry } from "@tether/core"
import type { AgentRun, RunOutcome } from "@tether/core"

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

const clockTime = (millis: number) => new Date(millis).toTimeString().slice(0, 8)

/** How a run ended, in one line (without the time and run id). @since 0.1.0 */
export const describeOutcome = (outcome: RunOutcome.RunOutcome): string => {
  // How many of the tokens were estimated: output that streamed after the model's last usage report.
  const estimated = outcome.tally.estimated
  const tokens = `${outcome.tokensUsed} tokens${estimated > 0 ? ` (${estimated} estimated)` : ""}`
  switch (outcome._tag) {
    case "Completed":
      return `completed · ${tokens} · ${plural(outcome.writesCommitted, "write")} committed`
    case "Cancelled":
      return [
        `cancelled: ${CancelReason.describe(outcome.reason)} (${outcome.reason._tag})`,
        tokens,
        `${plural(outcome.writesRolledBack, "write")} rolled back`
      ].join(" · ")
    case "Failed":
      return `failed: ${outcome.error} · ${tokens} · ${plural(outcome.writesRolledBack, "write")} rolled back`
  }
}

/** What the shutdown did, in one line. @since 0.1.0 */
export const describeShutdown = (cancelled: number, writesRolledBack: number): string =>
  cancelled === 0
    ? "tether chat: shut down; no run was going"
    : `tether chat: shut down; ${plural(cancelled, "run")} cancelled (Shutdown), ${plural(writesRolledBack, "write")} rolled back`

/**
 * `RunRegistry` with a log line per run start and end; when the layer closes,
 * the runs still going are cancelled with `Shutdown` and one line sums up the
 * runs the shutdown cancelled.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<RunRegistry.RunRegistry, never, RunRegistry.RunRegistry> = Layer.scoped(
  RunRegistry.RunRegistry,
  Effect.gen(function* () {
    const registry = yield* RunRegistry.RunRegistry
    const followers = yield* FiberSet.make()
    const shutdown = yield* Ref.make({ cancelled: 0, writesRolledBack: 0 })
    // Added after the FiberSet, so it runs first: every follower writes its line before the summary.
    yield* Effect.addFinalizer(() =>
      registry.cancelAll(new CancelReason.Shutdown()).pipe(
        Effect.zipRight(FiberSet.awaitEmpty(followers)),
        Effect.zipRight(Ref.get(shutdown)),
        Effect.flatMap(({ cancelled, writesRolledBack }) => Console.log(describeShutdown(cancelled, writesRolledBack)))
      )
    )
    const follow = (run: AgentRun.AgentRun) =>
      Effect.gen(function* () {
        const startedAt = yield* Clock.currentTimeMillis
        yield* Console.log(`${clockTime(startedAt)} ${run.id} started (session ${run.sessionId ?? "-"})`)
        const outcome = yield* run.outcome
        const endedAt = yield* Clock.currentTimeMillis
        const seconds = ((endedAt - startedAt) / 1000).toFixed(1)
        yield* Console.log(`${clockTime(endedAt)} ${run.id} ${describeOutcome(outcome)} · ${seconds} s`)
        if (outcome._tag === "Cancelled" && outcome.reason._tag === "Shutdown") {
          yield* Ref.update(shutdown, (sum) => ({
            cancelled: sum.cancelled + 1,
            writesRolledBack: sum.writesRolledBack + outcome.writesRolledBack
          }))
        }
      })
    return {
      ...registry,
      start: (sessionId, agent, input, options) =>
        Effect.tap(registry.start(sessionId, agent, input, options), (run) => FiberSet.run(followers, follow(run)))
    }
  })
)
