/**
 * What a run reports as it goes. Events are Schema classes so they cross HTTP
 * (Server-Sent Events) and logs unchanged. Every event carries the run's id and
 * a sequence number that grows by one per event of the run.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { RunEvent } from "@tether/core"
 *
 * const onlyText = (events: Stream.Stream<RunEvent.RunEvent>) =>
 *   events.pipe(Stream.filter((event) => event._tag === "TextDelta"))
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { CancelReason } from "./CancelReason.js"
import { Tally } from "./TokenBudget.js"

const common = {
  runId: Schema.String,
  seq: Schema.Number,
  /** The agent that emitted the event: the root agent's name, or `parent/child` for sub-agents. */
  agent: Schema.String
}

/** @since 0.1.0 */
export class RunStarted extends Schema.TaggedClass<RunStarted>()("RunStarted", {
  ...common,
  sessionId: Schema.optional(Schema.String)
}) {}
/** @since 0.1.0 */
export class TurnStarted extends Schema.TaggedClass<TurnStarted>()("TurnStarted", { ...common, turn: Schema.Number }) {}
/** @since 0.1.0 */
export class TextDelta extends Schema.TaggedClass<TextDelta>()("TextDelta", { ...common, text: Schema.String }) {}
/**
 * Cumulative tokens of the whole run tree, updated as they stream: `tokens` used so far (`tally.used`), which
 * `tally` splits into what the model reported and what Tether estimated; `reservedInFlight` more are held by turns
 * still streaming (not used yet), out of the `ceiling`.
 *
 * @since 0.1.0
 */
export class TokensUsed extends Schema.TaggedClass<TokensUsed>()("TokensUsed", {
  ...common,
  tokens: Schema.Number,
  ceiling: Schema.optional(Schema.Number),
  tally: Tally,
  reservedInFlight: Schema.Number
}) {}
/** @since 0.1.0 */
export class ToolStarted extends Schema.TaggedClass<ToolStarted>()("ToolStarted", {
  ...common,
  toolUseId: Schema.String,
  tool: Schema.String,
  input: Schema.Unknown
}) {}
/** @since 0.1.0 */
export class ToolSucceeded extends Schema.TaggedClass<ToolSucceeded>()("ToolSucceeded", {
  ...common,
  toolUseId: Schema.String,
  tool: Schema.String,
  output: Schema.Unknown
}) {}
/**
 * The tool failed or its input was bad; the model gets the error as a tool result.
 *
 * @since 0.1.0
 */
export class ToolFailed extends Schema.TaggedClass<ToolFailed>()("ToolFailed", {
  ...common,
  toolUseId: Schema.String,
  tool: Schema.String,
  error: Schema.String
}) {}
/** @since 0.1.0 */
export class ToolInterrupted extends Schema.TaggedClass<ToolInterrupted>()("ToolInterrupted", {
  ...common,
  toolUseId: Schema.String,
  tool: Schema.String
}) {}
/**
 * A tool ignored its cancellation and the run stopped waiting for it after
 * `afterMillis`. Whatever it still does cannot stage writes: they are refused.
 *
 * @since 0.1.0
 */
export class ToolAbandoned extends Schema.TaggedClass<ToolAbandoned>()("ToolAbandoned", {
  ...common,
  toolUseId: Schema.String,
  tool: Schema.String,
  afterMillis: Schema.Number
}) {}
/** @since 0.1.0 */
export class SubtaskStarted extends Schema.TaggedClass<SubtaskStarted>()("SubtaskStarted", {
  ...common,
  subtaskId: Schema.String,
  name: Schema.String
}) {}
/** @since 0.1.0 */
export class SubtaskEnded extends Schema.TaggedClass<SubtaskEnded>()("SubtaskEnded", {
  ...common,
  subtaskId: Schema.String,
  name: Schema.String,
  outcome: Schema.Literal("succeeded", "failed", "interrupted")
}) {}
/** @since 0.1.0 */
export class WriteStaged extends Schema.TaggedClass<WriteStaged>()("WriteStaged", {
  ...common,
  description: Schema.String
}) {}
/** @since 0.1.0 */
export class Committed extends Schema.TaggedClass<Committed>()("Committed", { ...common, count: Schema.Number }) {}
/** @since 0.1.0 */
export class RolledBack extends Schema.TaggedClass<RolledBack>()("RolledBack", {
  ...common,
  count: Schema.Number,
  compensations: Schema.Number,
  reason: Schema.String
}) {}
/**
 * The run completed. `tokensUsed` is `tally.used`, split by `tally` as `TokenBudget.Tally` says.
 *
 * @since 0.1.0
 */
export class RunCompleted extends Schema.TaggedClass<RunCompleted>()("RunCompleted", {
  ...common,
  text: Schema.String,
  tokensUsed: Schema.Number,
  tally: Tally
}) {}
/**
 * The run was cancelled. `tokensUsed` is `tally.used`; `tokensEstimated` is true when part of it was estimated
 * (`tally.estimated`: an aborted stream never reports its final usage). A run cancelled before its model answered
 * used 0.
 *
 * @since 0.1.0
 */
export class RunCancelled extends Schema.TaggedClass<RunCancelled>()("RunCancelled", {
  ...common,
  reason: CancelReason,
  tokensUsed: Schema.Number,
  tokensEstimated: Schema.Boolean,
  tally: Tally,
  writesRolledBack: Schema.Number
}) {}
/**
 * The run failed. `tokensUsed` is `tally.used`.
 *
 * @since 0.1.0
 */
export class RunFailed extends Schema.TaggedClass<RunFailed>()("RunFailed", {
  ...common,
  error: Schema.String,
  tokensUsed: Schema.Number,
  tally: Tally,
  writesRolledBack: Schema.Number
}) {}

/** @since 0.1.0 */
export const RunEvent = Schema.Union(
  RunStarted,
  TurnStarted,
  TextDelta,
  TokensUsed,
  ToolStarted,
  ToolSucceeded,
  ToolFailed,
  ToolInterrupted,
  ToolAbandoned,
  SubtaskStarted,
  SubtaskEnded,
  WriteStaged,
  Committed,
  RolledBack,
  RunCompleted,
  RunCancelled,
  RunFailed
)
/** @since 0.1.0 */
export type RunEvent = typeof RunEvent.Type

/**
 * True for the last event of a run.
 *
 * @since 0.1.0
 */
export const isTerminal = (event: RunEvent): event is RunCompleted | RunCancelled | RunFailed =>
  event._tag === "RunCompleted" || event._tag === "RunCancelled" || event._tag === "RunFailed"
