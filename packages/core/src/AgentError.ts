/**
 * Typed failures of a run (as opposed to cancellations, which carry a
 * `CancelReason`). Model failures are `ModelError`s; staged-write failures are
 * `StagedWriteError`s, or `WriteConflictError`s when a record changed under an `Expect`, or
 * `CommitOutcomeUnknownError` when the database connection was lost at the commit, or `CommitFencedError` when the
 * run lost its claim (cluster mode) before it could commit.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agent, AgentRun } from "@tether/core"
 *
 * const agent = Agent.make({ name: "assistant", maxTurns: 3 })
 * const answer = AgentRun.run(agent, "hello").pipe(
 *   Effect.map((result) => result.text),
 *   Effect.catchTag("MaxTurnsError", (e) => Effect.succeed(`gave up after ${e.maxTurns} turns`))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as CancelReason from "./CancelReason.js"
import type { ModelError } from "./ModelError.js"
import type {
  CommitFencedError,
  CommitOutcomeUnknownError,
  StagedWriteError,
  WriteConflictError
} from "./StagedWrites.js"

/**
 * The model still asked for tools after `maxTurns` turns.
 *
 * @since 0.1.0
 */
export class MaxTurnsError extends Schema.TaggedError<MaxTurnsError>()("MaxTurnsError", {
  agent: Schema.String,
  maxTurns: Schema.Number
}) {}

/**
 * A subtask that nobody awaited failed, so the run cannot commit.
 *
 * @since 0.1.0
 */
export class SubtaskFailedError extends Schema.TaggedError<SubtaskFailedError>()("SubtaskFailedError", {
  subtask: Schema.String,
  message: Schema.String
}) {}

/**
 * A sub-agent reached its own `timeout` or `tokenBudget` (given to `AgentRun.run` inside a run) and was stopped:
 * its model requests aborted, its loop interrupted. The parent run goes on; a tool that ran the sub-agent reports
 * this to the model like any failure.
 *
 * @since 0.1.0
 */
export class SubAgentCancelledError extends Schema.TaggedError<SubAgentCancelledError>()("SubAgentCancelledError", {
  agent: Schema.String,
  reason: CancelReason.CancelReason,
  message: Schema.String
}) {}

/** @since 0.1.0 */
export type AgentError =
  | ModelError
  | MaxTurnsError
  | SubtaskFailedError
  | SubAgentCancelledError
  | StagedWriteError
  | WriteConflictError
  | CommitOutcomeUnknownError
  | CommitFencedError
