import { Cause, Effect, Exit, FiberId, FiberRef, HashSet, LogLevel, Option } from "effect"
import { SubtaskFailedError, type AgentError } from "../AgentError.js"
import type { RunOutcome } from "../RunOutcome.js"
import * as CancelReason from "../CancelReason.js"
import * as RunEvent from "../RunEvent.js"
import type { EventCommon, RunContext } from "./context.js"
import type { LoopResult } from "./loop.js"
import type { Snapshot } from "../TokenBudget.js"
import { describeError } from "./describe.js"
import * as Transcript from "./transcript.js"
import { make as makeEvent } from "./event.js"
import { isInterruptedOnly } from "./interruptedOnly.js"

/**
 * How a run ends once its tree has stopped: commit on success; otherwise roll back, run the compensations and
 * say why. Each ending returns the outcome, the terminal event and the exit of the run's fiber.
 */
export interface Ending {
  readonly outcome: RunOutcome
  readonly terminal: (common: EventCommon) => RunEvent.RunEvent
  readonly exit: Effect.Effect<LoopResult, AgentError>
}

/**
 * The fiber id with which @effect/platform's HTTP servers interrupt a handler whose client went away
 * (`clientAbortFiberId`), rebuilt here (ids compare by value) so that core needs no HTTP platform.
 */
export const clientAbortFiberId = FiberId.runtime(-499, 0)

/** Why a fiber was interrupted, as its interruptors tell: a client that went away, or anything else. */
export const reasonOfInterruption = (cause: Cause.Cause<unknown>): CancelReason.CancelReason =>
  HashSet.has(Cause.interruptors(cause), clientAbortFiberId)
    ? new CancelReason.ClientDisconnected()
    : new CancelReason.Interrupted()

/**
 * Waits for every subtask, including those spawned while waiting (the list is append-only: one at a time, in
 * order); reports the first that failed. Plain `flatMap`s: the body holds this from its start.
 */
export const awaitSubtasks = (ctx: RunContext): Effect.Effect<void, SubtaskFailedError> =>
  Effect.suspend(() => awaitSubtasksFrom(ctx, 0))

const awaitSubtasksFrom = (ctx: RunContext, index: number): Effect.Effect<void, SubtaskFailedError> => {
  const subtask = ctx.subtasks[index]
  if (subtask === undefined) return Effect.void
  return Effect.flatMap(subtask.fiber.await, (exit) =>
    !subtask.observed && Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
      ? Effect.fail(new SubtaskFailedError({ subtask: subtask.name, message: Cause.pretty(exit.cause) }))
      : awaitSubtasksFrom(ctx, index + 1)
  )
}

interface Undo {
  readonly writes: number
  readonly compensations: number
}

const nothingUndone: Effect.Effect<Undo> = Effect.succeed({ writes: 0, compensations: 0 })

/**
 * Rolls back staged writes and runs compensations in reverse order; failures are logged, never thrown. Without a
 * transaction or a compensation there is nothing to undo (most cancelled runs): no generator then.
 */
const undo = (ctx: RunContext): Effect.Effect<Undo> =>
  Option.isNone(ctx.transaction) && ctx.undo.compensations.length === 0 ? nothingUndone : undoAll(ctx)

const undoAll = (ctx: RunContext): Effect.Effect<Undo> =>
  Effect.gen(function* () {
    const staged = ctx.undo.staged
    const writes = yield* Option.match(ctx.transaction, {
      onNone: () => Effect.succeed(0),
      onSome: (transaction) =>
        transaction.rollback.pipe(
          Effect.map(() => staged),
          Effect.catchAllCause((cause) =>
            Effect.as(Effect.logError("rollback failed", cause).pipe(Effect.annotateLogs("runId", ctx.runId)), staged)
          )
        )
    })
    const undos = ctx.undo.compensations
    ctx.undo.compensations = []
    for (const compensation of [...undos].reverse()) {
      yield* compensation.pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("compensation failed", cause).pipe(Effect.annotateLogs("runId", ctx.runId))
        )
      )
    }
    return { writes, compensations: undos.length }
  })

/** The ending of a run whose body succeeded and whose writes (`committed` of them) are in. */
const completed = (ctx: RunContext, result: LoopResult, tokens: Snapshot, committed: number): Ending => {
  const outcome: RunOutcome = {
    _tag: "Completed",
    runId: ctx.runId,
    text: result.text,
    transcript: result.transcript,
    tokensUsed: tokens.used,
    tally: tokens.tally,
    writesCommitted: committed
  }
  return {
    outcome,
    terminal: (c: EventCommon) =>
      makeEvent(RunEvent.RunCompleted, c, {
        text: result.text,
        tokensUsed: tokens.used,
        tally: tokens.tally
      }),
    exit: Effect.succeed(result)
  }
}

/**
 * Commits a run whose body succeeded, or undoes one that did not, once every child of it has ended. A success
 * with nothing to commit (no `StagedWrites`) ends at once.
 */
export const settle = (
  ctx: RunContext,
  bodyExit: Exit.Exit<LoopResult, AgentError>,
  recordedReason: Option.Option<CancelReason.CancelReason>,
  transcript: Transcript.Cell
): Effect.Effect<Ending> =>
  Exit.isSuccess(bodyExit)
    ? Option.isNone(ctx.transaction)
      ? Effect.sync(() => completed(ctx, bodyExit.value, ctx.ledger.unsafeSnapshot(), 0))
      : settleAll(ctx, bodyExit, transcript)
    : isInterruptedOnly(bodyExit.cause)
      ? cancelled(ctx, bodyExit.cause, recordedReason, transcript)
      : failed(ctx, bodyExit.cause, transcript)

/** Commits the writes of a run whose body succeeded. */
const settleAll = (
  ctx: RunContext,
  bodyExit: Exit.Success<LoopResult, AgentError>,
  transcript: Transcript.Cell
): Effect.Effect<Ending> =>
  Effect.gen(function* () {
    const tokens = yield* ctx.ledger.snapshot
    const committed = yield* Option.match(ctx.transaction, {
      onNone: () => Effect.succeed(0),
      onSome: (transaction) => transaction.commit
    }).pipe(Effect.exit)
    if (Exit.isSuccess(committed)) {
      if (committed.value > 0) yield* ctx.emit((c) => makeEvent(RunEvent.Committed, c, { count: committed.value }))
      return completed(ctx, bodyExit.value, tokens, committed.value)
    }
    return yield* failed(ctx, committed.cause, transcript)
  })

/**
 * The ending of a cancelled run: its writes rolled back and its compensations run, then its outcome. Plain
 * `flatMap`s (thousands of runs cancelled at once each pay for every step).
 */
const cancelled = (
  ctx: RunContext,
  cause: Cause.Cause<AgentError>,
  recordedReason: Option.Option<CancelReason.CancelReason>,
  transcript: Transcript.Cell
): Effect.Effect<Ending> => {
  const reason = Option.isSome(recordedReason) ? recordedReason.value : reasonOfInterruption(cause)
  const why = CancelReason.describe(reason)
  return Effect.flatMap(undo(ctx), (undone) => {
    ctx.publish((c) =>
      makeEvent(RunEvent.RolledBack, c, { count: undone.writes, compensations: undone.compensations, reason: why })
    )
    const tokensNow = ctx.ledger.unsafeSnapshot()
    const ending: Ending = {
      outcome: {
        _tag: "Cancelled",
        runId: ctx.runId,
        reason,
        transcript: Transcript.close(transcript.current, why),
        tokensUsed: tokensNow.used,
        tokensEstimated: tokensNow.estimated,
        tally: tokensNow.tally,
        writesRolledBack: undone.writes,
        compensationsRun: undone.compensations
      },
      terminal: (c: EventCommon) =>
        makeEvent(RunEvent.RunCancelled, c, {
          reason,
          tokensUsed: tokensNow.used,
          tokensEstimated: tokensNow.estimated,
          tally: tokensNow.tally,
          writesRolledBack: undone.writes
        }),
      exit: Effect.interrupt
    }
    // A library's routine news is Debug: the application decides what to print (see the README's "Logging"). The
    // level is checked first, as `Effect.whenLogLevel` does, without building the log's effect.
    return Effect.withFiberRuntime((fiber) =>
      LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), LogLevel.Debug)
        ? Effect.succeed(ending)
        : Effect.as(
            Effect.logDebug(`run cancelled: ${why}`).pipe(
              Effect.annotateLogs({
                runId: ctx.runId,
                reason: reason._tag,
                tokensUsed: tokensNow.used,
                writesRolledBack: undone.writes
              })
            ),
            ending
          )
    )
  })
}

const failed = (ctx: RunContext, cause: Cause.Cause<AgentError>, transcript: Transcript.Cell): Effect.Effect<Ending> =>
  Effect.gen(function* () {
    const error = Option.match(Cause.failureOption(cause), {
      onNone: () => Cause.pretty(cause),
      onSome: describeError
    })
    const undoneAll = yield* undo(ctx)
    // A commit whose outcome is unknown rolled nothing back: its writes may have landed.
    const isFateUnknown = Option.exists(Cause.failureOption(cause), (e) => e._tag === "CommitOutcomeUnknownError")
    const undone = isFateUnknown ? { ...undoneAll, writes: 0 } : undoneAll
    yield* ctx.emit((c) =>
      makeEvent(RunEvent.RolledBack, c, { count: undone.writes, compensations: undone.compensations, reason: error })
    )
    const tokens = yield* ctx.ledger.snapshot
    yield* Effect.logDebug(`run failed: ${error}`).pipe(
      Effect.annotateLogs({ runId: ctx.runId }),
      Effect.whenLogLevel("Debug")
    )
    const outcome: RunOutcome = {
      _tag: "Failed",
      runId: ctx.runId,
      cause,
      error,
      transcript: Transcript.close(transcript.current, "it failed"),
      tokensUsed: tokens.used,
      tally: tokens.tally,
      writesRolledBack: undone.writes,
      compensationsRun: undone.compensations
    }
    return {
      outcome,
      terminal: (c: EventCommon) =>
        makeEvent(RunEvent.RunFailed, c, {
          error,
          tokensUsed: tokens.used,
          tally: tokens.tally,
          writesRolledBack: undone.writes
        }),
      exit: Effect.failCause(cause) as Effect.Effect<LoopResult, AgentError>
    }
  })
