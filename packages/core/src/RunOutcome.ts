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

/**
 * @since 0.1.0
 * @category models
 */
export type RunOutcome = Data.TaggedEnum<{
  Completed: {
    readonly runId: string
    readonly text: string
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
    readonly writesCommitted: number
  }
  Cancelled: {
    readonly runId: string
    readonly reason: CancelReason
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
    /** True when an aborted stream's output was estimated from its deltas. */
    readonly tokensEstimated: boolean
    readonly writesRolledBack: number
    readonly compensationsRun: number
  }
  Failed: {
    readonly runId: string
    readonly cause: Cause.Cause<AgentError>
    readonly error: string
    readonly transcript: ReadonlyArray<Message>
    readonly tokensUsed: number
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
