/**
 * A running agent: its id, its event stream, its outcome, and `cancel`, which
 * records a reason, interrupts the whole tree (turns, tools, subtasks, model
 * requests), rolls back its staged writes and runs its compensations.
 *
 * Inside a run, tools use `AgentRun.stage` and `AgentRun.compensate` so their
 * effects take hold only if the run succeeds.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Agent, AgentRun, CancelReason } from "@tether/core"
 *
 * declare const agent: Agent.Agent<never>
 * const program = Effect.scoped(
 *   Effect.gen(function* () {
 *     const run = yield* AgentRun.start(agent, "Plan my trip")
 *     yield* Effect.sleep("2 seconds")
 *     const outcome = yield* run.cancel(new CancelReason.UserAbort())
 *     // outcome._tag === "Cancelled", outcome.writesRolledBack, outcome.transcript ...
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Data, Effect, Option, Ref } from "effect"
import type { Cause, Duration, Fiber, Scope, Stream } from "effect"
import type { Agent, RunInput } from "./Agent.js"
import type { AgentError } from "./AgentError.js"
import type { CancelReason } from "./CancelReason.js"
import type { LanguageModel } from "./LanguageModel.js"
import type { Message } from "./Message.js"
import type { RunEvent } from "./RunEvent.js"
import * as StagedWrites from "./StagedWrites.js"
import type { Snapshot, Tally } from "./TokenBudget.js"
import { CurrentRun } from "./internal/context.js"
import * as internal from "./internal/run.js"

/**
 * How a run ended. `tokensUsed` is what the whole run tree used (`tally.used`); `tally` says how much of it the
 * model reported (input, output) and how much Tether estimated (see `TokenBudget.Tally`). A run cancelled before
 * its model answered used 0.
 *
 * @since 0.1.0
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

/** Constructors and matchers of `RunOutcome`. @since 0.1.0 */
export const RunOutcome = Data.taggedEnum<RunOutcome>()

/** Options of one run. @since 0.1.0 */
export interface RunOptions {
  readonly runId?: string | undefined
  readonly sessionId?: string | undefined
  /** Token ceiling for the whole run tree; defaults to the agent's. */
  readonly tokenBudget?: number | undefined
  /** Cancels the run with `Timeout` when it runs longer. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How long a cancel waits for the tree to stop before it reports the fibers still alive. Default 5 seconds. */
  readonly cancelDeadline?: Duration.DurationInput | undefined
  /** What to do with fibers of the run still alive after it ended: log a warning (default) or die (tests). */
  readonly onLeak?: "warn" | "die" | undefined
}

/** @since 0.1.0 */
export interface AgentRun {
  readonly id: string
  readonly sessionId: string | undefined
  readonly agent: string
  /** Every event of the run from the first; ends after the terminal event. */
  readonly events: Stream.Stream<RunEvent>
  /** The events whose `seq` is greater than `seq` (to resume after `Last-Event-ID`). */
  readonly eventsAfter: (seq: number) => Stream.Stream<RunEvent>
  /**
   * Records `reason`, interrupts the tree, and waits for the outcome. On a run that already ended it only
   * returns the outcome. The wait is bounded by the run's `cancelDeadline` (plus its rollback).
   */
  readonly cancel: (reason: CancelReason) => Effect.Effect<RunOutcome>
  /** Records `reason` and interrupts the tree without waiting (cancel many runs, then await their outcomes). */
  readonly requestCancel: (reason: CancelReason) => Effect.Effect<void>
  /**
   * `requestCancel`, synchronously, for code outside Effect (an `AbortSignal`'s listener, a Node callback): the
   * run's model requests are aborted before it returns, with no fiber started on the way.
   */
  readonly unsafeRequestCancel: (reason: CancelReason) => void
  /** Waits for the outcome. */
  readonly outcome: Effect.Effect<RunOutcome>
  /** The outcome, if the run ended. */
  readonly poll: Effect.Effect<Option.Option<RunOutcome>>
  /** The run tree's token ledger. */
  readonly tokens: Effect.Effect<Snapshot>
  /** The run's fiber; its exit is `Interrupted` when the run was cancelled. */
  readonly fiber: Effect.Effect<Fiber.RuntimeFiber<unknown, AgentError>>
}

/**
 * Starts a run in the current scope and returns its handle at once. Closing the
 * scope cancels the run.
 *
 * @since 0.1.0
 */
export const start = <R>(
  agent: Agent<R>,
  input: RunInput,
  options?: RunOptions
): Effect.Effect<AgentRun, never, Scope.Scope | LanguageModel | Exclude<R, CurrentRun>> =>
  Effect.flatMap(internal.make(agent, input, options ?? {}), ({ run, program, attach }) =>
    Effect.as(Effect.flatMap(Effect.forkScoped(program), attach), run)
  )

/**
 * Stages a write: it is committed with the run when the run succeeds, and never
 * otherwise. Fails when the run has no `StagedWrites` service or already ended.
 *
 * @since 0.1.0
 */
export const stage = (write: StagedWrites.Write): Effect.Effect<void, StagedWrites.StagedWriteError, CurrentRun> =>
  Effect.flatMap(CurrentRun, (ctx) => internal.stage(ctx, write))

/**
 * Registers an undo for a side effect outside the database. Undos run in
 * reverse order when the run does not succeed.
 *
 * @since 0.1.0
 */
export const compensate = (undo: Effect.Effect<void>): Effect.Effect<void, never, CurrentRun> =>
  Effect.flatMap(CurrentRun, (ctx) => Ref.update(ctx.compensations, (undos) => [...undos, undo]))

/** The id of the run the caller is part of, if any. @since 0.1.0 */
export const currentRunId: Effect.Effect<Option.Option<string>> = Effect.map(
  Effect.serviceOption(CurrentRun),
  Option.map((ctx) => ctx.runId)
)

/** The session of the run the caller is part of, if it was started with one. @since 0.1.0 */
export const currentSessionId: Effect.Effect<Option.Option<string>> = Effect.map(
  Effect.serviceOption(CurrentRun),
  Option.flatMap((ctx) => Option.fromNullable(ctx.sessionId))
)

/** The tag tools use to reach their run; provided by the run to every tool and subtask. @since 0.1.0 */
export { CurrentRun }
