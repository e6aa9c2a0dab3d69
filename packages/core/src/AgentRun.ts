/**
 * Running agents. A run is a tree of fibers in one scope: each turn streams
 * from the `LanguageModel`, tool calls of a turn run as concurrent child
 * fibers, subtasks fork into the run's scope. Cancelling the run (or
 * interrupting the fiber that runs it) records a reason, aborts every
 * in-flight model request, interrupts the whole tree, rolls back its staged
 * writes and runs its compensations. Run inside another run (from a tool or a
 * subtask), an agent is a sub-agent: it shares the parent's session, staged
 * writes and events, draws on its token budget and stops with it.
 *
 * Inside a run, tools use `AgentRun.stage` and `AgentRun.compensate` so that
 * their effects take hold only if the run succeeds.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agent, AgentRun, CancelReason } from "@tether/core"
 *
 * const agent = Agent.make({ name: "planner", system: "Plan trips." })
 *
 * // To its end, on the caller's fiber:
 * const answer = AgentRun.run(agent, "Plan my trip").pipe(Effect.map((result) => result.text))
 *
 * // Or as a handle, cancelled from elsewhere:
 * const cancelled = Effect.scoped(
 *   Effect.gen(function* () {
 *     const run = yield* AgentRun.start(agent, "Plan my trip")
 *     yield* Effect.sleep("2 seconds")
 *     return yield* run.cancel(new CancelReason.UserAbort()) // outcome: Cancelled, writesRolledBack, transcript
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Option, Runtime } from "effect"
import type { Duration, Fiber, Scope, Stream } from "effect"
import type { Agent } from "./Agent.js"
import type { AgentError } from "./AgentError.js"
import * as CancelReason from "./CancelReason.js"
import { CurrentRun } from "./CurrentRun.js"
import type { LanguageModel } from "./LanguageModel.js"
import type { Message } from "./Message.js"
import type { RunEvent } from "./RunEvent.js"
import type { RunOutcome } from "./RunOutcome.js"
import type * as StagedWrites from "./StagedWrites.js"
import type { Snapshot } from "./TokenBudget.js"
import * as AbortSignals from "./internal/abortSignal.js"
import { currentContext, withContext } from "./internal/context.js"
import { runNested } from "./internal/nested.js"
import * as internal from "./internal/run.js"
import { runEnded, stage as stageIn } from "./internal/staging.js"

/**
 * What a run starts from: a user message, or a history and a message.
 *
 * @since 0.1.0
 * @category models
 */
export type RunInput =
  string | { readonly history?: ReadonlyArray<Message> | undefined; readonly message: string | Message }

/**
 * What a successful run returns: the last text and the whole transcript, ready for the next message.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunResult {
  readonly text: string
  readonly transcript: ReadonlyArray<Message>
}

/**
 * Options of one run. Inside another run (a sub-agent), `runId` (the id its events and `CurrentRun` carry; default
 * the parent's), `timeout` and `tokenBudget` apply to the sub-agent, which then fails with `SubAgentCancelledError`
 * when it reaches either; `sessionId`, `cancelDeadline` and `onLeak` are the root run's.
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * A running agent.
 *
 * @since 0.1.0
 * @category models
 */
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
  readonly cancel: (reason: CancelReason.CancelReason) => Effect.Effect<RunOutcome>
  /** Records `reason` and interrupts the tree without waiting (cancel many runs, then await their outcomes). */
  readonly requestCancel: (reason: CancelReason.CancelReason) => Effect.Effect<void>
  /**
   * `requestCancel`, synchronously, for code outside Effect (an `AbortSignal`'s listener, a Node callback): the
   * run's model requests are aborted before it returns, with no fiber started on the way.
   */
  readonly unsafeRequestCancel: (reason: CancelReason.CancelReason) => void
  /** Waits for the outcome. */
  readonly outcome: Effect.Effect<RunOutcome>
  /** The outcome, if the run ended. */
  readonly poll: Effect.Effect<Option.Option<RunOutcome>>
  /** The run tree's token ledger. */
  readonly tokens: Effect.Effect<Snapshot>
  /** The run's fiber; its exit is `Interrupted` when the run was cancelled. */
  readonly fiber: Effect.Effect<Fiber.RuntimeFiber<unknown, AgentError>>
  /**
   * The run's transcript as it stands, closed as if the run stopped now for `why`: the text streamed so far kept,
   * every tool call answered with what became of it (`why` is in those answers). What a checkpoint saves, so that
   * a run lost with its process still leaves a valid conversation (cluster mode). On a run that ended: its closed
   * transcript as it was when it stopped.
   */
  readonly transcriptSoFar: (why: string) => Effect.Effect<ReadonlyArray<Message>>
}

/**
 * Starts a run in the current scope and returns its handle at once. Closing the scope cancels the run.
 *
 * @since 0.1.0
 * @category running
 */
export const start = <R>(
  agent: Agent<R>,
  input: RunInput,
  options?: RunOptions
): Effect.Effect<AgentRun, never, Scope.Scope | LanguageModel | R> =>
  Effect.flatMap(internal.make(agent, input, options ?? {}), ({ attach, program, run }) =>
    Effect.as(Effect.flatMap(Effect.forkScoped(program), attach), run)
  )

/**
 * Runs an agent to its end on the current fiber. Interrupting the caller cancels the run (a client disconnect of
 * @effect/platform is recorded as `ClientDisconnected`); the exit is then `Interrupted`. Inside another run it runs
 * as a sub-agent of that run.
 *
 * @since 0.1.0
 * @category running
 */
export const run = <R>(
  agent: Agent<R>,
  input: RunInput,
  options?: RunOptions
): Effect.Effect<RunResult, AgentError, LanguageModel | R> =>
  Effect.flatMap(currentContext, (parent) =>
    Option.isSome(parent)
      ? runNested(parent.value, agent, input, options ?? {})
      : Effect.flatMap(internal.make(agent, input, options ?? {}), ({ attach, program }) =>
          Effect.zipRight(
            Effect.withFiberRuntime<boolean>((fiber) => attach(fiber as never)),
            program
          )
        )
  )

/**
 * Runs an agent from Promise code. Aborting `signal` cancels the whole tree (with the signal's reason when it is a
 * `CancelReason`, else `UserAbort`); the Promise resolves with the outcome either way and never leaves a listener
 * on the signal.
 *
 * @example
 * ```ts
 * import { ManagedRuntime } from "effect"
 * import { Agent, AgentRun } from "@tether/core"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const agent = Agent.make({ name: "assistant" })
 * // In production: ManagedRuntime.make(AnthropicModel.layerConfig)
 * const runtime = ManagedRuntime.make(ScriptedModel.layer([ScriptedModel.text("Hello!")]))
 *
 * const controller = new AbortController() // controller.abort() cancels the run
 * const outcome = await AgentRun.runPromise(agent, "hi", {
 *   runtime: await runtime.runtime(),
 *   signal: controller.signal
 * })
 * console.log(outcome._tag) // "Completed"
 * await runtime.dispose()
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const runPromise = async <R>(
  agent: Agent<R>,
  input: RunInput,
  options: RunOptions & {
    readonly runtime: Runtime.Runtime<LanguageModel | R>
    readonly signal?: AbortSignal | undefined
  }
): Promise<RunOutcome> => {
  const { attach, program, run } = await Runtime.runPromise(options.runtime)(internal.make(agent, input, options))
  const fiber = Runtime.runFork(options.runtime)(program)
  Runtime.runSync(options.runtime)(attach(fiber))
  const signal = options.signal
  // Synchronous all the way to the abort of the run's model requests: no Schema decode of a reason that is already
  // one, no fiber started.
  const onAbort = () => {
    const given: unknown = signal?.reason
    const reason = CancelReason.isCancelReason(given)
      ? given
      : Option.getOrElse(
          CancelReason.decodeOption(given),
          (): CancelReason.CancelReason => new CancelReason.UserAbort()
        )
    run.unsafeRequestCancel(reason)
  }
  const release = signal === undefined ? undefined : AbortSignals.onAbort(signal, onAbort)
  try {
    return await Runtime.runPromise(options.runtime)(run.outcome)
  } finally {
    release?.()
  }
}

/**
 * Stages a write: it is committed with the run when the run succeeds, and never otherwise. Fails when the run has
 * no `StagedWrites` service or already ended.
 *
 * @since 0.1.0
 * @category inside a run
 */
export const stage = (write: StagedWrites.Write): Effect.Effect<void, StagedWrites.StagedWriteError, CurrentRun> =>
  withContext(
    (ctx) => stageIn(ctx, write),
    () => Effect.fail(runEnded())
  )

/**
 * Registers an undo for a side effect outside the database. Undos run in reverse order when the run does not
 * succeed.
 *
 * @since 0.1.0
 * @category inside a run
 */
export const compensate = (undo: Effect.Effect<void>): Effect.Effect<void, never, CurrentRun> =>
  withContext(
    (ctx) =>
      Effect.sync(() => {
        ctx.undo.compensations = [...ctx.undo.compensations, undo]
      }),
    () => Effect.void
  )

/**
 * The id of the run the caller is part of, if any.
 *
 * @since 0.1.0
 * @category inside a run
 */
export const currentRunId: Effect.Effect<Option.Option<string>> = Effect.map(
  Effect.serviceOption(CurrentRun),
  Option.map((run) => run.runId)
)

/**
 * The session of the run the caller is part of, if it was started with one.
 *
 * @since 0.1.0
 * @category inside a run
 */
export const currentSessionId: Effect.Effect<Option.Option<string>> = Effect.map(
  Effect.serviceOption(CurrentRun),
  Option.flatMap((run) => Option.fromNullable(run.sessionId))
)
