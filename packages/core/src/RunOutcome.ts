/**
 * How a run ended: `Completed` (its writes committed), `Cancelled` (with the
 * reason that won; its writes rolled back, its compensations run) or `Failed`
 * (with a typed cause; rolled back too). Each carries the transcript as far as
 * it got, every tool call in it answered, ready for the next message.
 *
 * @example
 * ```ts
 * import { CancelReason, RunOutcome } from "@tether/core"
 *
 * const summary = RunOutcome.RunOutcome.$match({
 *   Completed: (done) => `done: ${done.text} (${done.writesCommitted} writes)`,
 *   Cancelled: (cancelled) => `cancelled: ${CancelReason.describe(cancelled.reason)}`,
 *   Failed: (failed) => `failed: ${failed.error}`
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { Cause } from "effect"
import type { AgentError } from "./AgentError.js"
import type { CancelReason } from "./CancelReason.js"
import type { Message } from "./Message.js"
import type { Tally } from "./TokenBudget.js"

/**
 * `tokensUsed` is what the whole run tree used (`tally.used`); `tally` says how much of it the model reported
 * (input, output) and how much Tether estimated (see `TokenBudget.Tally`). A run cancelled before its model
 * answered used 0.
 *
 * @since 0.1.0
 * @category models
 */
export type RunOutcome = Data.TaggedEnum<{
  Completed: {
    readonly runId: string
    readonly text: string
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
    readonly tally: Tally
    readonly writesCommitted: number
  }
  Cancelled: {
    readonly runId: string
    readonly reason: CancelReason
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
    /** True when part of `tokensUsed` was estimated (`tally.estimated > 0`), e.g. an aborted stream's output. */
    readonly tokensEstimated: boolean
    readonly tally: Tally
    readonly writesRolledBack: number
    readonly compensationsRun: number
  }
  Failed: {
    readonly runId: string
    readonly cause: Cause.Cause<AgentError>
    readonly error: string
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
    readonly tally: Tally
    readonly writesRolledBack: number
    readonly compensationsRun: number
  }
}>

/**
 * Constructors and matchers of `RunOutcome`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const RunOutcome = Data.taggedEnum<RunOutcome>()
