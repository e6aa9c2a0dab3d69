import { setMaxListeners } from "node:events"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  FiberId,
  Option,
  PubSub,
  Ref,
  Scope,
  Stream,
  Supervisor
} from "effect"
import type { Agent, RunInput } from "../Agent.js"
import type { AgentError } from "../AgentError.js"
import type { AgentRun, RunOptions, RunOutcome } from "../AgentRun.js"
import * as CancelReason from "../CancelReason.js"
import type { LanguageModel } from "../LanguageModel.js"
import type { Message } from "../Message.js"
import * as RunEvent from "../RunEvent.js"
import * as StagedWrites from "../StagedWrites.js"
import * as TokenBudget from "../TokenBudget.js"
import { CurrentRun, emitter, runEnded, type EventCommon, type RunContext, type SubtaskEntry } from "./context.js"
import { runLoop, type LoopResult } from "./loop.js"
import { awaitSubtasks, reasonOf, settle } from "./ending.js"
import * as Transcript from "./transcript.js"
import { withSpan } from "./tracing.js"
import { make as makeEvent } from "./event.js"

let runCounter = 0
const newRunId = () => `run_${Date.now().toString(36)}_${(runCounter++).toString(36)}`

export const inputMessages = (input: RunInput): ReadonlyArray<Message> => {
  if (typeof input === "string") return [{ role: "user", content: [{ type: "text", text: input }] }]
  const message: Message =
    typeof input.message === "string"
      ? { role: "user", content: [{ type: "text", text: input.message }] }
      : input.message
  return [...(input.history ?? []), message]
}

export const stage = (ctx: RunContext, write: StagedWrites.Write) =>
  ctx
    .stageWrite(write)
    .pipe(
      Effect.zipRight(Ref.update(ctx.stagedCount, (n) => n + 1)),
      Effect.zipRight(
        ctx.emit((c) => makeEvent(RunEvent.WriteStaged, { ...c, description: StagedWrites.describe(write) }))
      )
    )

const stageInto =
  (transaction: Option.Option<StagedWrites.Transaction>, lifecycle: { isEnded: boolean }) =>
  (write: StagedWrites.Write): Effect.Effect<void, StagedWrites.StagedWriteError> =>
    lifecycle.isEnded
      ? Effect.fail(runEnded())
      : Option.match(transaction, {
          onNone: () =>
            Effect.fail(
              new StagedWrites.StagedWriteError({
                operation: "stage",
                message: "no StagedWrites service was provided to the run"
              })
            ),
          onSome: (tx) => tx.stage(write)
        })

/**
 * Builds a root run: its handle, and the program that runs it. The program opens
 * the run's scope, begins the staged writes before anything forks, runs the loop
 * raced against cancellation, then (uninterruptibly) closes the subtask scope,
 * commits or rolls back, and checks that no fiber of the tree is still alive.
 */
export const make = <R>(agent: Agent<R>, input: RunInput, options: RunOptions) =>
  Effect.gen(function* () {
    const runId = options.runId ?? newRunId()
    const agentPath = agent.name
    const events = yield* PubSub.unbounded<RunEvent.RunEvent>({ replay: Number.MAX_SAFE_INTEGER })
    let seq = 0
    // Events are built from typed values, without the Schema class constructor (`internal/event.ts`): this is a hot
    // path, one event per streamed chunk.
    const publishAs =
      (path: string) =>
      (make: (common: EventCommon) => RunEvent.RunEvent): void => {
        events.unsafeOffer(make({ runId, seq: ++seq, agent: path }))
      }
    const publish = publishAs(agentPath)
    const emit = emitter(publish)
    // The first reason recorded wins.
    let recordedReason: CancelReason.CancelReason | undefined
    const outcome = yield* Deferred.make<RunOutcome>()
    // Set as the outcome is decided: from then on a cancel has nothing to stop.
    let isDecided = false
    const fiberRef = yield* Deferred.make<Fiber.RuntimeFiber<unknown, AgentError>>()
    // The body's fiber, once forked; a cancel requested before that is remembered and applied at the fork.
    let bodyFiber: Fiber.RuntimeFiber<LoopResult, AgentError> | undefined
    let isCancelRequested = false
    const stopped = yield* Deferred.make<void>()
    const subtasks: Array<SubtaskEntry> = []
    const cancelSignal = new AbortController()
    // Every in-flight model request of the tree listens to it (sub-agents and concurrent tools: many at once).
    setMaxListeners(0, cancelSignal.signal)
    const cancelNow = (reason: CancelReason.CancelReason, requester: FiberId.FiberId = FiberId.none): void => {
      recordedReason ??= reason
      isCancelRequested = true
      // Signal first: model requests abort in this very call, then the fibers unwind. The reason is the signal's
      // (a plain value: no DOMException with its stack trace for every run cancelled).
      cancelSignal.abort(recordedReason)
      bodyFiber?.unsafeInterruptAsFork(requester)
      // The whole tree at once: subtasks stop alongside the body, not after it.
      for (const subtask of subtasks) subtask.fiber.unsafeInterruptAsFork(requester)
      Deferred.unsafeDone(stopped, Exit.void)
    }
    const requestCancel = (reason: CancelReason.CancelReason): Effect.Effect<void> =>
      Effect.fiberIdWith((requester) => Effect.sync(() => cancelNow(reason, requester)))
    const ledger = yield* TokenBudget.make({
      ceiling: options.tokenBudget ?? agent.tokenBudget,
      onExceeded: (snapshot) =>
        requestCancel(
          new CancelReason.BudgetExceeded({
            ceiling: snapshot.ceiling,
            used: snapshot.used,
            estimated: snapshot.tally.estimated
          })
        )
    })
    const cancelDeadline = Duration.decode(options.cancelDeadline ?? "5 seconds")
    const transcript = Transcript.initial(inputMessages(input))

    const program = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const staging = yield* Effect.serviceOption(StagedWrites.StagedWrites)
        const supervisor = yield* Supervisor.track
        const runScope = yield* Scope.make()
        yield* emit((c) =>
          makeEvent(RunEvent.RunStarted, { ...c, ...(options.sessionId ? { sessionId: options.sessionId } : {}) })
        )
        // Annotating a log costs a fiber-ref update even when the level filters the log out: check first.
        yield* Effect.logDebug("run started").pipe(
          Effect.annotateLogs({ runId, agent: agent.name }),
          Effect.whenLogLevel("Debug")
        )
        // Staging is acquired before anything forks, so its release runs after every child has ended.
        const transaction = yield* Option.match(staging, {
          onNone: () => Effect.succeed(Option.none<StagedWrites.Transaction>()),
          onSome: (service) => Effect.map(Scope.extend(service.begin(runId), runScope), Option.some)
        }).pipe(Effect.either)
        const openTransaction = transaction._tag === "Right" ? transaction.right : Option.none()
        const lifecycle = { isEnded: false }
        // Sequential: by the time it closes every subtask has been interrupted (all at once, see below).
        const childScope = yield* Scope.fork(runScope, ExecutionStrategy.sequential)
        const ctx: RunContext = {
          runId,
          sessionId: options.sessionId,
          agentPath,
          emit,
          publish,
          publishAs,
          ledger,
          transaction: openTransaction,
          stageWrite: stageInto(openTransaction, lifecycle),
          runStageWrite: stageInto(openTransaction, lifecycle),
          lifecycle,
          toolUseId: undefined,
          stagedCount: yield* Ref.make(0),
          compensations: yield* Ref.make<ReadonlyArray<Effect.Effect<void>>>([]),
          childScope,
          subtasks,
          cancelled: cancelSignal.signal,
          requestCancel,
          cancelNow,
          nextId: (prefix) => `${prefix}_${runId}_${++seq}`
        }
        const body: Effect.Effect<LoopResult, AgentError, any> =
          transaction._tag === "Left"
            ? Effect.fail(transaction.left)
            : runLoop(agent, ctx, transcript).pipe(
                Effect.zipLeft(awaitSubtasks(ctx)),
                Effect.provideService(CurrentRun, ctx)
              )
        // The span wraps the body inside its fiber, so it lasts as long as the run's tree works (around the fork it
        // would end as soon as the fiber started).
        const forked = yield* Effect.fork(restore(body).pipe(withSpan("Agent.run", { runId, agent: agent.name }))).pipe(
          Effect.supervised(supervisor)
        )
        bodyFiber = forked
        forked.addObserver(() => Deferred.unsafeDone(stopped, Exit.void))
        if (isCancelRequested) yield* Fiber.interruptFork(forked)
        const timer =
          options.timeout === undefined
            ? undefined
            : yield* Effect.fork(
                restore(
                  Effect.sleep(options.timeout).pipe(
                    Effect.zipRight(
                      requestCancel(
                        new CancelReason.Timeout({ millis: Duration.toMillis(Duration.decode(options.timeout)) })
                      )
                    )
                  )
                )
              )
        // The wait ends when the body ends, when a cancel is requested (it also interrupts the body), or when
        // this fiber is interrupted (a client that went away, a FiberMap.remove): then its cause says who.
        const waited = yield* Effect.exit(restore(Deferred.await(stopped)))
        // Interrupted from outside: the same signal-first stop of the whole tree as a cancel, for the reason its
        // interruptors tell (model requests abort in this call, before any fiber unwinds).
        if (Exit.isFailure(waited) && !isCancelRequested) {
          cancelNow(reasonOf(Option.none(), waited.cause), yield* Effect.fiberId)
        }
        if (timer !== undefined) yield* Fiber.interruptFork(timer)
        // From here on every write is refused, unless the body completed.
        lifecycle.isEnded = isCancelRequested || forked.unsafePoll()?._tag === "Failure"
        // The tree stops before anything is committed or rolled back: the loop with its turns and tool calls,
        // then the subtasks (interrupted and awaited; a cancel has already interrupted them with the loop, all
        // at once). A child that will not stop (an uninterruptible region) is left behind after the deadline:
        // the writes still roll back (its later writes are refused), and the leak is reported below. The body is
        // still running here only if it was told to stop (`stopped` is done by its end or by a cancel); it usually
        // unwinds within one turn of the scheduler, and only one that has not pays for the deadline's race (it
        // forks fibers, and a cancel of thousands of runs at once pays for them).
        if (forked.unsafePoll() === null) yield* Effect.yieldNow()
        const bodyDone =
          forked.unsafePoll() !== null
            ? Option.some(undefined)
            : yield* Effect.interruptible(Fiber.await(forked)).pipe(Effect.timeoutOption(cancelDeadline))
        const finished = forked.unsafePoll()
        const bodyExit: Exit.Exit<LoopResult, AgentError> = Exit.isFailure(waited)
          ? Exit.failCause(waited.cause)
          : finished !== null
            ? finished
            : Exit.interrupt(forked.id())
        const childrenDone =
          subtasks.length === 0
            ? yield* Effect.asSome(Scope.close(childScope, bodyExit))
            : yield* Fiber.interruptAll(subtasks.map((subtask) => subtask.fiber)).pipe(
                Effect.zipRight(Scope.close(childScope, bodyExit)),
                Effect.interruptible,
                Effect.disconnect,
                Effect.timeoutOption(cancelDeadline)
              )
        const result = yield* settle(ctx, bodyExit, Option.fromNullable(recordedReason), transcript)
        yield* Scope.close(runScope, Exit.void)
        const alive = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
        // The outcome is decided before the terminal event goes out: whoever saw the event finds it ended.
        isDecided = true
        yield* Deferred.succeed(outcome, result.outcome)
        yield* emit(result.terminal)
        if (alive.length > 0 || Option.isNone(bodyDone) || Option.isNone(childrenDone)) {
          const message = `run ${runId}: ${alive.length} fiber(s) still alive after the run ended`
          if (options.onLeak === "die") return yield* Effect.die(new Error(message))
          yield* Effect.logWarning(message).pipe(
            Effect.annotateLogs({ runId, fibers: alive.map((f) => FiberId.threadName(f.id())).join(",") })
          )
        }
        return yield* result.exit
      })
    ).pipe(
      // If the program is interrupted before it starts, or dies outside the body, the outcome is still decided. (A
      // cancelled run's program also ends interrupted, with its outcome decided already: nothing to build then.)
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) || isDecided
          ? Effect.void
          : Effect.suspend(() => {
              isDecided = true
              return Deferred.succeed(
                outcome,
                Cause.isInterruptedOnly(exit.cause)
                  ? {
                      _tag: "Cancelled",
                      runId,
                      reason: reasonOf(Option.fromNullable(recordedReason), exit.cause),
                      transcript: inputMessages(input),
                      tokensUsed: 0,
                      tokensEstimated: false,
                      tally: TokenBudget.emptyTally,
                      writesRolledBack: 0,
                      compensationsRun: 0
                    }
                  : {
                      _tag: "Failed",
                      runId,
                      cause: exit.cause as Cause.Cause<AgentError>,
                      error: Cause.pretty(exit.cause),
                      transcript: inputMessages(input),
                      tokensUsed: 0,
                      tally: TokenBudget.emptyTally,
                      writesRolledBack: 0,
                      compensationsRun: 0
                    }
              )
            })
      )
    )

    const eventStream = () => Stream.fromPubSub(events).pipe(Stream.takeUntil(RunEvent.isTerminal))
    const awaitOutcome = Deferred.await(outcome)
    const cancelUnlessEnded = (reason: CancelReason.CancelReason, requester: FiberId.FiberId = FiberId.none) => {
      if (!isDecided) cancelNow(reason, requester)
    }
    const requestCancelUnlessEnded = (reason: CancelReason.CancelReason): Effect.Effect<void> =>
      Effect.fiberIdWith((requester) => Effect.sync(() => cancelUnlessEnded(reason, requester)))
    const run: AgentRun = {
      id: runId,
      sessionId: options.sessionId,
      agent: agent.name,
      // Built when read (most runs are never watched; a stream pipeline is dozens of objects per run).
      get events() {
        return eventStream()
      },
      eventsAfter: (after) => eventStream().pipe(Stream.filter((event) => event.seq > after)),
      // The run bounds its own ending (the cancel deadline on the tree, then rollback), so a cancel just
      // waits for the outcome.
      cancel: (reason) => Effect.zipRight(requestCancelUnlessEnded(reason), awaitOutcome),
      requestCancel: requestCancelUnlessEnded,
      unsafeRequestCancel: (reason) => cancelUnlessEnded(reason),
      outcome: awaitOutcome,
      poll: Deferred.poll(outcome).pipe(
        Effect.flatMap(Option.match({ onNone: () => Effect.succeedNone, onSome: Effect.asSome }))
      ),
      tokens: ledger.snapshot,
      fiber: Deferred.await(fiberRef)
    }
    const attach = (fiber: Fiber.RuntimeFiber<unknown, AgentError>) => Deferred.succeed(fiberRef, fiber)
    return {
      run,
      program: program as Effect.Effect<LoopResult, AgentError, LanguageModel | Exclude<R, CurrentRun>>,
      attach
    }
  })
