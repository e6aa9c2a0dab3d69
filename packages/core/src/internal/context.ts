import { Context, Effect } from "effect"
import type { Fiber, Option, Ref, Scope } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { RunEvent } from "../RunEvent.js"
import { StagedWriteError, type Transaction, type Write } from "../StagedWrites.js"
import type { Ledger } from "../TokenBudget.js"

/** Fields every event of a run carries. */
export interface EventCommon {
  readonly runId: string
  readonly seq: number
  readonly agent: string
}

/** A subtask of the run; `observed` once someone joined or awaited it (its failure is then theirs to handle). */
export interface SubtaskEntry {
  readonly name: string
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  observed: boolean
}

/** The state a run tree shares: one per root run; sub-agents get a copy with their own `agentPath`. */
export interface RunContext {
  readonly runId: string
  readonly sessionId: string | undefined
  readonly agentPath: string
  readonly emit: (make: (common: EventCommon) => RunEvent) => Effect.Effect<void>
  /** `emit`, synchronously (for a provider's event callback). */
  readonly publish: (make: (common: EventCommon) => RunEvent) => void
  /** A (synchronous) publisher for a sub-agent at `path`. */
  readonly publishAs: (path: string) => (make: (common: EventCommon) => RunEvent) => void
  readonly ledger: Ledger
  readonly transaction: Option.Option<Transaction>
  /**
   * Where a write staged here goes: the run's transaction, or, inside a tool call, that call's buffer, which
   * reaches the transaction only if the call succeeds (a failed or timed-out tool leaves no write behind).
   */
  readonly stageWrite: (write: Write) => Effect.Effect<void, StagedWriteError>
  /** The run-level `stageWrite`: subtasks stage here, since they belong to the run, not to the call that spawned them. */
  readonly runStageWrite: (write: Write) => Effect.Effect<void, StagedWriteError>
  /** Set once the run's body has stopped: from then on every write is refused. */
  readonly lifecycle: { isEnded: boolean }
  /** The tool call this part of the tree runs in, if any. */
  readonly toolUseId: string | undefined
  readonly stagedCount: Ref.Ref<number>
  readonly compensations: Ref.Ref<ReadonlyArray<Effect.Effect<void>>>
  /** Where subtasks fork: closed (interrupting and awaiting them) before the writes roll back. */
  readonly childScope: Scope.Scope
  /** Every subtask spawned in the run, in order (append-only): a cancel interrupts them all at once. */
  readonly subtasks: Array<SubtaskEntry>
  /**
   * A signal for one model request, aborted (with the run's reason) when the run is cancelled, before its fibers are
   * interrupted; `release` once the request is over.
   */
  readonly requestSignal: () => { readonly signal: AbortSignal; readonly release: () => void }
  /** Cancels the root run without waiting for it (safe to call from inside the tree). */
  readonly requestCancel: (reason: CancelReason) => Effect.Effect<void>
  /** `requestCancel`, synchronously (for a provider's event callback). */
  readonly cancelNow: (reason: CancelReason) => void
  readonly nextId: (prefix: string) => string
}

/** `emit` made of a `publish`. */
export const emitter =
  (publish: (make: (common: EventCommon) => RunEvent) => void) =>
  (make: (common: EventCommon) => RunEvent): Effect.Effect<void> =>
    Effect.sync(() => publish(make))

export class CurrentRun extends Context.Tag("@tether/core/AgentRun/CurrentRun")<CurrentRun, RunContext>() {}

/** The refusal of a write that arrives after the run stopped (from work that ignored the cancel). */
export const runEnded = () =>
  new StagedWriteError({ operation: "stage", message: "the run's transaction has already ended" })
