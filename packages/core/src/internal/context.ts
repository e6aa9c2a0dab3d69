import { Context } from "effect"
import type { Effect, Fiber, Option, Ref, Scope } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { RunEvent } from "../RunEvent.js"
import type { Transaction } from "../StagedWrites.js"
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
  /** An emitter for a sub-agent at `path`. */
  readonly emitAs: (path: string) => (make: (common: EventCommon) => RunEvent) => Effect.Effect<void>
  readonly ledger: Ledger
  readonly transaction: Option.Option<Transaction>
  readonly stagedCount: Ref.Ref<number>
  readonly compensations: Ref.Ref<ReadonlyArray<Effect.Effect<void>>>
  /** Where subtasks fork: closed (interrupting and awaiting them) before the writes roll back. */
  readonly childScope: Scope.Scope
  readonly subtasks: Ref.Ref<ReadonlyArray<SubtaskEntry>>
  /** Cancels the root run without waiting for it (safe to call from inside the tree). */
  readonly requestCancel: (reason: CancelReason) => Effect.Effect<void>
  readonly nextId: (prefix: string) => string
}

export class CurrentRun extends Context.Tag("@tether/core/AgentRun/CurrentRun")<CurrentRun, RunContext>() {}
