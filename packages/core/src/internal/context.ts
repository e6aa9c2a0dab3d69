import { Context, Effect, FiberRef, Option, Tracer } from "effect"
import type { Fiber, Scope } from "effect"
import type { CancelReason } from "../CancelReason.js"
import * as CurrentRun from "../CurrentRun.js"
import type { RunEvent } from "../RunEvent.js"
import type { StagedWriteError, Transaction, Write } from "../StagedWrites.js"
import type { Ledger } from "../TokenBudget.js"
import type { RequestStop } from "./requestStop.js"

/** Fields every event of a run carries. */
export interface EventCommon {
  readonly runId: string
  readonly seq: number
  readonly agent: string
}

/** How many writes the run staged, and its compensations in the order they were registered. */
export interface UndoLog {
  staged: number
  compensations: ReadonlyArray<Effect.Effect<void>>
}

/** A subtask of the run; `observed` once someone joined or awaited it (its failure is then theirs to handle). */
export interface SubtaskEntry {
  readonly name: string
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  observed: boolean
}

/**
 * The state a run tree shares: one per root run; sub-agents get a copy with their own `agentPath`. It is what the
 * run provides as `CurrentRun` (whose public interface shows only the first fields).
 */
export interface RunContext extends CurrentRun.Service {
  readonly [RunContextTypeId]: RunContextTypeId
  readonly emit: (make: (common: EventCommon) => RunEvent) => Effect.Effect<void>
  /** `emit`, synchronously (for a provider's event callback). */
  readonly publish: (make: (common: EventCommon) => RunEvent) => void
  /** A (synchronous) publisher for a sub-agent at `path`, whose events carry `runId` (default the root's). */
  readonly publishAs: (path: string, runId?: string) => (make: (common: EventCommon) => RunEvent) => void
  readonly ledger: Ledger
  readonly transaction: Option.Option<Transaction>
  /**
   * Where a write staged here goes: the run's transaction, or, inside a tool call, that call's buffer, which
   * reaches the transaction only if the call succeeds (a failed or timed-out tool leaves no write behind).
   */
  readonly stageWrite: (write: Write) => Effect.Effect<void, StagedWriteError>
  /** The run-level `stageWrite`: subtasks stage here, since they belong to the run, not to the call that spawned them. */
  readonly runStageWrite: (write: Write) => Effect.Effect<void, StagedWriteError>
  /** False once the run's body has stopped without completing: from then on every write is refused. */
  readonly acceptsWrites: () => boolean
  /** What a rollback undoes: shared by the whole tree (a plain cell: read and written synchronously). */
  readonly undo: UndoLog
  /** Where subtasks fork: closed (interrupting and awaiting them) before the writes roll back. */
  readonly childScope: Scope.Scope
  /** Every subtask spawned in the run, in order (append-only): a cancel interrupts them all at once. */
  readonly subtasks: Array<SubtaskEntry>
  /**
   * The stop of one model request: its signal is aborted (with the run's reason) when the run is cancelled, before
   * its fibers are interrupted; `release` it once the request is over.
   */
  readonly requestStop: () => RequestStop
  /** Cancels the root run without waiting for it (safe to call from inside the tree). */
  readonly requestCancel: (reason: CancelReason) => Effect.Effect<void>
  /** `requestCancel`, synchronously (for a provider's event callback). */
  readonly cancelNow: (reason: CancelReason) => void
  readonly nextId: (prefix: string) => string
}

export const RunContextTypeId: unique symbol = Symbol.for("@tether/core/RunContext")
export type RunContextTypeId = typeof RunContextTypeId

const isRunContext = (service: CurrentRun.Service): service is RunContext => RunContextTypeId in service

/** The run context of the current fiber, if it runs in a run (a `CurrentRun` a run provided, not a stand-in). */
export const currentContext: Effect.Effect<Option.Option<RunContext>> = Effect.map(
  Effect.serviceOption(CurrentRun.CurrentRun),
  (service) => Option.filter(service, isRunContext)
)

/** The run context of the current fiber; outside a run, `onNone`. */
export const withContext = <A, E, R>(
  onSome: (ctx: RunContext) => Effect.Effect<A, E, R>,
  onNone: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | CurrentRun.CurrentRun> =>
  Effect.flatMap(CurrentRun.CurrentRun, (service) => (isRunContext(service) ? onSome(service) : onNone()))

/** Runs `effect` with `ctx` as its `CurrentRun`. */
export const provide = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  ctx: RunContext
): Effect.Effect<A, E, Exclude<R, CurrentRun.CurrentRun>> => Effect.provideService(effect, CurrentRun.CurrentRun, ctx)

/**
 * Runs `effect` with `ctx` as its `CurrentRun` and `span` (if any) as its parent span, set once on the fiber that
 * runs it, with no scope to restore them: for a fiber of the run's own (its body), which nothing runs on after.
 */
export const provideOnFiber = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  ctx: RunContext,
  span: Tracer.Span | undefined
): Effect.Effect<A, E, Exclude<R, CurrentRun.CurrentRun>> =>
  Effect.zipRight(
    FiberRef.update(FiberRef.currentContext, (outer) => {
      const context = Context.add(outer, CurrentRun.CurrentRun, ctx)
      return span === undefined ? context : Context.add(context, Tracer.ParentSpan, span)
    }),
    effect as Effect.Effect<A, E, Exclude<R, CurrentRun.CurrentRun>>
  )
