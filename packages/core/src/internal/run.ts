/**
 * A root run: its handle and the program that runs it. The program goes through the lifecycle's states
 * (`lifecycle.ts`) in phases, each a function below: `begin` (staging acquired before anything forks, the body
 * forked), `awaitStop` (the body ends, or a cancel or an interruption stops it), `stopChildren` (the body and every
 * subtask have stopped, or the deadline passed), `settle` (commit or roll back, in `ending.ts`) and `finish` (the
 * outcome decided, the terminal event, the leak check).
 */
import { Cause, Duration, Effect, Either, ExecutionStrategy, Exit, Fiber, FiberId, Option, Scope } from "effect"
import { Supervisor } from "effect"
import type { Agent } from "../Agent.js"
import type { AgentError } from "../AgentError.js"
import type { AgentRun, RunInput, RunOptions } from "../AgentRun.js"
import * as CancelReason from "../CancelReason.js"
import type { LanguageModel } from "../LanguageModel.js"
import type { Message } from "../Message.js"
import * as RunEvent from "../RunEvent.js"
import type { RunOutcome } from "../RunOutcome.js"
import * as StagedWrites from "../StagedWrites.js"
import * as TokenBudget from "../TokenBudget.js"
import { RunContextTypeId, provideOnFiber, type RunContext } from "./context.js"
import { awaitSubtasks, reasonOfInterruption, settle, type Ending } from "./ending.js"
import { make as makeEvent } from "./event.js"
import * as Events from "./events.js"
import * as Lifecycle from "./lifecycle.js"
import { handleOf, type Shared } from "./shared.js"
import { runLoop, type LoopResult } from "./loop.js"
import { stageInto } from "./staging.js"
import * as Stopper from "./stopper.js"
import * as Transcript from "./transcript.js"
import { flatten } from "./flatten.js"
import { openSpan } from "./tracing.js"
import { Once } from "./once.js"

let runCounter = 0
const newRunId = () => flatten(`run_${Date.now().toString(36)}_${(runCounter++).toString(36)}`)

/** The messages a run starts from. */
export const inputMessages = (input: RunInput): ReadonlyArray<Message> => {
  if (typeof input === "string") return [{ role: "user", content: [{ type: "text", text: input }] }]
  const message: Message =
    typeof input.message === "string"
      ? { role: "user", content: [{ type: "text", text: input.message }] }
      : input.message
  return [...(input.history ?? []), message]
}

/** A root run, built: its handle, the program that runs it, and how to tell the handle the program's fiber. */
export interface Built<R> {
  readonly run: AgentRun
  readonly program: Effect.Effect<LoopResult, AgentError, LanguageModel | R>
  readonly attach: (fiber: Fiber.RuntimeFiber<unknown, AgentError>) => Effect.Effect<boolean>
}

/** What `begin` sets up: the run's context, scopes, the body's fiber, the timeout's timer and the leak supervisor. */
interface Begun {
  readonly ctx: RunContext
  /** Holds the run's transaction, if a `StagedWrites` is provided (closed after the writes settle). */
  readonly runScope: Scope.CloseableScope | undefined
  readonly childScope: Scope.CloseableScope
  readonly body: Fiber.RuntimeFiber<LoopResult, AgentError>
  readonly timer: Fiber.RuntimeFiber<void> | undefined
  readonly supervisor: Supervisor.Supervisor<Array<Fiber.RuntimeFiber<any, any>>>
}

/** The run's context: the root of its tree (`begin`); its functions close over `shared` and the transaction only. */
const contextOf = <R>(
  shared: Shared<R>,
  transaction: Option.Option<StagedWrites.Transaction>,
  childScope: Scope.Scope
): RunContext => {
  const { events, stopper } = shared
  const acceptsWrites = () => Lifecycle.acceptsWrites(shared.lifecycle.state)
  const stageWrite = stageInto(transaction, acceptsWrites)
  return {
    [RunContextTypeId]: RunContextTypeId,
    runId: shared.runId,
    sessionId: shared.options.sessionId,
    agentPath: shared.agent.name,
    toolUseId: undefined,
    emit: events.emit,
    publish: events.publish,
    publishAs: events.publishAs,
    ledger: shared.ledger,
    transaction,
    stageWrite,
    runStageWrite: stageWrite,
    acceptsWrites,
    undo: { staged: 0, compensations: [] },
    childScope,
    subtasks: stopper.subtasks,
    requestStop: () => stopper.requestStop(Lifecycle.reasonOf(shared.lifecycle.state)),
    requestCancel: (reason) =>
      Effect.fiberIdWith((requester) =>
        Effect.sync(() => shared.transition(Lifecycle.requestCancel(shared.lifecycle.state, reason), requester))
      ),
    cancelNow: (reason) => shared.transition(Lifecycle.requestCancel(shared.lifecycle.state, reason)),
    nextId: events.nextId
  }
}

type Restore = <A, E, R2>(self: Effect.Effect<A, E, R2>) => Effect.Effect<A, E, R2>

/**
 * The run's scopes and its transaction: with a `StagedWrites`, the transaction in `runScope` and `childScope`
 * forked from it (so the transaction's release runs after every subtask has ended); without one, `childScope` alone.
 */
interface Scopes {
  readonly runScope: Scope.CloseableScope | undefined
  readonly childScope: Scope.CloseableScope
  readonly transaction: Either.Either<Option.Option<StagedWrites.Transaction>, StagedWrites.StagedWriteError>
}

const scopesOf = (runId: string): Effect.Effect<Scopes> =>
  Effect.flatMap(Effect.serviceOption(StagedWrites.StagedWrites), (staging) =>
    Option.isNone(staging)
      ? Effect.map(Scope.make(ExecutionStrategy.sequential), (childScope): Scopes => ({
          runScope: undefined,
          childScope,
          transaction: Either.right(Option.none())
        }))
      : Effect.flatMap(Scope.make(), (runScope) =>
          Effect.flatMap(
            Effect.either(Effect.asSome(Scope.extend(staging.value.begin(runId), runScope))),
            (transaction) =>
              // Sequential: by the time it closes every subtask has been interrupted (all at once, see `stopChildren`).
              Effect.map(Scope.fork(runScope, ExecutionStrategy.sequential), (childScope): Scopes => ({
                runScope,
                childScope,
                transaction
              }))
          )
        )
  )

/**
 * Staging is acquired before anything forks (so its release runs after every child has ended); the body forks.
 * Plain `flatMap`s, not `Effect.gen`: a generator function made per run gets a hidden class of its own.
 */
const begin = <R>(shared: Shared<R>, restore: Restore): Effect.Effect<Begun, never, any> =>
  Effect.flatMap(Supervisor.track, (supervisor) =>
    Effect.suspend(() => {
      const { agent, events, options, runId } = shared
      events.publish((c) =>
        makeEvent(RunEvent.RunStarted, c, options.sessionId ? { sessionId: options.sessionId } : {})
      )
      // Annotating a log costs a fiber-ref update even when the level filters the log out: check first.
      const logged = Effect.logDebug("run started").pipe(
        Effect.annotateLogs({ runId, agent: agent.name }),
        Effect.whenLogLevel("Debug")
      )
      return Effect.flatMap(Effect.zipRight(logged, scopesOf(runId)), ({ childScope, runScope, transaction }) =>
        Effect.suspend(() =>
          Effect.suspend(() => {
            const ctx = contextOf(shared, transaction._tag === "Right" ? transaction.right : Option.none(), childScope)
            return (
              // The span lasts as long as the body's fiber (ended by its observer): the run's tree works inside it.
              // It and the run's context are set once on that fiber, which is the body's own.
              Effect.flatMap(openSpan("AgentRun.run", { runId, agent: agent.name }), (span) => {
                const program: Effect.Effect<LoopResult, AgentError, any> =
                  transaction._tag === "Left"
                    ? Effect.fail(transaction.left)
                    : provideOnFiber(
                        runLoop(agent, ctx, shared.transcript).pipe(Effect.zipLeft(awaitSubtasks(ctx))),
                        ctx,
                        span?.span
                      )
                return Effect.flatMap(
                  Effect.fork(restore(program)).pipe(Effect.supervised(supervisor)),
                  (body): Effect.Effect<Begun> => {
                    if (span !== undefined) body.addObserver(span.end)
                    body.addObserver(shared.stopper.markStopped)
                    shared.transition(Lifecycle.bodyForked(shared.lifecycle.state, body))
                    const begun = (timer: Fiber.RuntimeFiber<void> | undefined): Begun => ({
                      ctx,
                      runScope,
                      childScope,
                      body,
                      timer,
                      supervisor
                    })
                    return options.timeout === undefined
                      ? Effect.succeed(begun(undefined))
                      : Effect.map(
                          Effect.fork(
                            restore(Effect.sleep(options.timeout).pipe(Effect.zipRight(timeoutCancel(ctx, options))))
                          ),
                          begun
                        )
                  }
                )
              })
            )
          })
        )
      )
    })
  )

const timeoutCancel = (ctx: RunContext, options: RunOptions) =>
  ctx.requestCancel(new CancelReason.Timeout({ millis: Duration.toMillis(Duration.decode(options.timeout!)) }))

/**
 * Waits until the body ends, a cancel stops it, or this fiber is interrupted from outside (a client that went away,
 * a `FiberMap.remove`): then the same signal-first stop as a cancel, for the reason the interruptors tell; then the
 * phases that end the run. The phases after the wait are its handlers', not continuations stacked under it: a live
 * run waits here, holding what is on its fiber's stack.
 */
const awaitStop = <R>(shared: Shared<R>, begun: Begun, restore: Restore): Effect.Effect<LoopResult, AgentError> =>
  Effect.matchCauseEffect(restore(shared.stopper.stopped), {
    onFailure: (cause) => afterStop(shared, begun, Exit.failCause(cause)),
    onSuccess: () => afterStop(shared, begun, Exit.void)
  })

const afterStop = <R>(
  shared: Shared<R>,
  begun: Begun,
  waited: Exit.Exit<void>
): Effect.Effect<LoopResult, AgentError> =>
  Effect.withFiberRuntime((fiber) => {
    if (Exit.isFailure(waited)) {
      shared.transition(Lifecycle.requestCancel(shared.lifecycle.state, reasonOfInterruption(waited.cause)), fiber.id())
    }
    const bodyEnded = Effect.suspend(() => {
      const ended = begun.body.unsafePoll()
      if (ended !== null) shared.transition(Lifecycle.bodyEnded(shared.lifecycle.state, Exit.isSuccess(ended)))
      return endRun(shared, begun, waited)
    })
    return begun.timer === undefined ? bodyEnded : Effect.zipRight(Fiber.interruptFork(begun.timer), bodyEnded)
  })

/** The phases once the run was told to stop or its body ended: the tree stops, the writes settle, the run ends. */
const endRun = <R>(shared: Shared<R>, begun: Begun, waited: Exit.Exit<void>): Effect.Effect<LoopResult, AgentError> =>
  Effect.flatMap(stopChildren(shared, begun, waited), ({ bodyExit, hasStopped }) =>
    Effect.flatMap(
      settle(begun.ctx, bodyExit, Option.fromNullable(Lifecycle.reasonOf(shared.lifecycle.state)), shared.transcript),
      (ending) => finish(shared, begun, ending, hasStopped)
    )
  )

/**
 * The tree stops before anything is committed or rolled back: the loop with its turns and tool calls, then the
 * subtasks (interrupted and awaited; a cancel has already interrupted them with the loop, all at once). A child that
 * will not stop (an uninterruptible region) is left behind after the deadline: the writes still roll back (its later
 * writes are refused), and the leak is reported by `finish`.
 */
const stopChildren = <R>(shared: Shared<R>, begun: Begun, waited: Exit.Exit<void>) =>
  Effect.suspend(() => {
    const { body } = begun
    const ended = body.unsafePoll()
    // The common case (a cancel of thousands of runs at once pays for every step): the body has ended, no subtask.
    if (ended !== null && shared.stopper.subtasks.length === 0) {
      const bodyExit: Exit.Exit<LoopResult, AgentError> = Exit.isFailure(waited) ? Exit.failCause(waited.cause) : ended
      return Effect.as(Scope.close(begun.childScope, bodyExit), { bodyExit, hasStopped: true })
    }
    // The body usually unwinds within one turn of the scheduler; only one that has not pays for the deadline's race
    // (it forks fibers, and a cancel of thousands of runs at once pays for them).
    const unwound = body.unsafePoll() === null ? Effect.yieldNow() : Effect.void
    return Effect.flatMap(unwound, () =>
      Effect.flatMap(
        body.unsafePoll() !== null
          ? Effect.succeed(true)
          : Effect.map(
              Effect.interruptible(Fiber.await(body)).pipe(Effect.timeoutOption(shared.cancelDeadline)),
              Option.isSome
            ),
        (bodyDone) => {
          const finished = body.unsafePoll()
          const bodyExit: Exit.Exit<LoopResult, AgentError> = Exit.isFailure(waited)
            ? Exit.failCause(waited.cause)
            : finished !== null
              ? finished
              : Exit.interrupt(body.id())
          const subtasks = shared.stopper.subtasks
          const childrenDone =
            subtasks.length === 0
              ? Effect.asSome(Scope.close(begun.childScope, bodyExit))
              : Fiber.interruptAll(subtasks.map((subtask) => subtask.fiber)).pipe(
                  Effect.zipRight(Scope.close(begun.childScope, bodyExit)),
                  Effect.interruptible,
                  Effect.disconnect,
                  Effect.timeoutOption(shared.cancelDeadline)
                )
          return Effect.map(childrenDone, (done) => ({
            bodyExit,
            hasStopped: bodyDone && Option.isSome(done)
          }))
        }
      )
    )
  })

/** The outcome is decided before the terminal event goes out: whoever saw the event finds the run ended. */
const finish = <R>(shared: Shared<R>, begun: Begun, ending: Ending, hasStopped: boolean) => {
  const decided = Effect.flatMap(begun.supervisor.value, (fibers) => {
    const alive = fibers.filter((fiber) => fiber.unsafePoll() === null)
    shared.transition(Lifecycle.decide(shared.lifecycle.state, ending.outcome))
    shared.outcome.unsafeDone(ending.outcome)
    shared.events.publish(ending.terminal)
    if (alive.length === 0 && hasStopped) return ending.exit
    const message = `run ${shared.runId}: ${alive.length} fiber(s) still alive after the run ended`
    if (shared.options.onLeak === "die") return Effect.die(new Error(message))
    return Effect.zipRight(
      Effect.logWarning(message).pipe(
        Effect.annotateLogs({ runId: shared.runId, fibers: alive.map((f) => FiberId.threadName(f.id())).join(",") })
      ),
      ending.exit
    )
  })
  return begun.runScope === undefined ? decided : Effect.zipRight(Scope.close(begun.runScope, Exit.void), decided)
}

/**
 * The outcome of a run whose program was interrupted before its body started, or died outside it (a cancelled
 * run's program also ends interrupted, with its outcome decided already: then there is nothing to decide).
 */
const decideEarly = <R>(shared: Shared<R>, exit: Exit.Exit<unknown, unknown>) =>
  Effect.suspend(() => {
    if (Exit.isSuccess(exit) || shared.lifecycle.state._tag === "Ended") return Effect.void
    const transcript = inputMessages(shared.input)
    const outcome: RunOutcome = Cause.isInterruptedOnly(exit.cause)
      ? {
          _tag: "Cancelled",
          runId: shared.runId,
          reason: Lifecycle.reasonOf(shared.lifecycle.state) ?? reasonOfInterruption(exit.cause),
          transcript,
          tokensUsed: 0,
          tokensEstimated: false,
          tally: TokenBudget.emptyTally,
          writesRolledBack: 0,
          compensationsRun: 0
        }
      : {
          _tag: "Failed",
          runId: shared.runId,
          cause: exit.cause as Cause.Cause<AgentError>,
          error: Cause.pretty(exit.cause),
          transcript,
          tokensUsed: 0,
          tally: TokenBudget.emptyTally,
          writesRolledBack: 0,
          compensationsRun: 0
        }
    shared.transition(Lifecycle.decide(shared.lifecycle.state, outcome))
    return shared.outcome.done(outcome)
  })

/**
 * The run's program: the phases in order, uninterruptible but where it waits for the tree. Plain `flatMap`s, not
 * `Effect.gen`: a generator (and its function's prototype, one per run) would stay live for the whole run.
 */
const programOf = <R>(shared: Shared<R>): Effect.Effect<LoopResult, AgentError, LanguageModel | R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.matchCauseEffect(
      Effect.flatMap(begin(shared, restore), (begun) => awaitStop(shared, begun, restore)),
      {
        onFailure: (cause) => Effect.zipRight(decideEarly(shared, Exit.failCause(cause)), Effect.failCause(cause)),
        onSuccess: Effect.succeed
      }
    )
  ) as Effect.Effect<LoopResult, AgentError, LanguageModel | R>

/** Builds a root run: its handle, and the program that runs it. */
export const make = <R>(agent: Agent<R>, input: RunInput, options: RunOptions): Effect.Effect<Built<R>> =>
  Effect.suspend(() => {
    const runId = options.runId ?? newRunId()
    const stopper = Stopper.make()
    const lifecycle = { state: Lifecycle.starting }
    const transition = (step: Lifecycle.Step, requester: FiberId.FiberId = FiberId.none) => {
      lifecycle.state = step.state
      if (step.stop) stopper.stop(Lifecycle.reasonOf(step.state)!, Lifecycle.bodyOf(step.state), requester)
    }
    const ledger = TokenBudget.make({
      ceiling: options.tokenBudget ?? agent.tokenBudget,
      onExceeded: (snapshot) =>
        Effect.fiberIdWith((requester) =>
          Effect.sync(() =>
            transition(
              Lifecycle.requestCancel(
                lifecycle.state,
                new CancelReason.BudgetExceeded({
                  ceiling: snapshot.ceiling,
                  used: snapshot.used,
                  estimated: snapshot.tally.estimated
                })
              ),
              requester
            )
          )
        )
    })
    return Effect.map(ledger, (ledger): Built<R> => {
      const shared: Shared<R> = {
        agent,
        input,
        options,
        runId,
        events: new Events.Events(runId, agent.name),
        lifecycle,
        transition,
        stopper,
        ledger,
        transcript: Transcript.initial(inputMessages(input)),
        outcome: new Once<RunOutcome>(),
        cancelDeadline: Duration.decode(options.cancelDeadline ?? "5 seconds")
      }
      const fiber = new Once<Fiber.RuntimeFiber<unknown, AgentError>>()
      return {
        run: handleOf(shared, fiber),
        program: programOf(shared),
        attach: (runFiber) => fiber.done(runFiber)
      }
    })
  })
