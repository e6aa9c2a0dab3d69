/**
 * A run's lifecycle as states and transitions. Each transition is a pure function of the state and an event; it
 * returns the next state and what the run must do about it (stop the tree, or nothing). `run.ts` holds the state in
 * one cell, applies the transitions and does what they say. The invariants:
 *
 * - **The first reason wins.** A reason, once recorded, is never replaced (`requestCancel` keeps it).
 * - **The tree is stopped once.** Only the transition into `Ending` with a reason asks for a stop.
 * - **The outcome is decided once.** `decide` is the only way into `Ended`, and `Ended` has no way out.
 * - **Writes close when the body stops.** From `Ending` on, a write is refused unless the body completed (see
 *   `acceptsWrites`): work that ignored its interruption cannot write into a run that is rolling back.
 *
 * Rollback after every child is done is the program's order of phases (`run.ts`), proven by the property tests.
 */
import type { Fiber } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { RunOutcome } from "../RunOutcome.js"

/** Where a run stands. */
export type State =
  /** Setting up, before its body fiber exists. A cancel now is remembered and applied when the body forks. */
  | { readonly _tag: "Starting"; readonly reason: CancelReason | undefined }
  /** The body (the agent loop and its subtasks) runs. */
  | { readonly _tag: "Running"; readonly body: Fiber.RuntimeFiber<unknown, unknown> }
  /**
   * The body has stopped or been told to: the tree is stopping, then the writes are committed or rolled back.
   * `reason` is why it was stopped; undefined when the body ended by itself (completed or failed).
   */
  | {
      readonly _tag: "Ending"
      readonly reason: CancelReason | undefined
      readonly hasBodyCompleted: boolean
      readonly body: Fiber.RuntimeFiber<unknown, unknown> | undefined
    }
  /** The outcome is decided. */
  | { readonly _tag: "Ended"; readonly outcome: RunOutcome }

/** A transition's result: the next state, and whether the run must now stop its tree (signal first). */
export interface Step {
  readonly state: State
  readonly stop: boolean
}

const stay = (state: State): Step => ({ state, stop: false })

export const starting: State = { _tag: "Starting", reason: undefined }

/**
 * A cancel with `reason` (also an interruption of the run's fiber from outside, whose interruptors tell the reason):
 * remembered while starting; stops a running body; too late once the run is ending or ended.
 */
export const requestCancel = (state: State, reason: CancelReason): Step => {
  switch (state._tag) {
    case "Starting":
      return stay(state.reason === undefined ? { _tag: "Starting", reason } : state)
    case "Running":
      return { state: { _tag: "Ending", reason, hasBodyCompleted: false, body: state.body }, stop: true }
    case "Ending":
    case "Ended":
      return stay(state)
  }
}

/** The body fiber has been forked: it runs, unless a cancel came first, which stops it at once. */
export const bodyForked = (state: State, body: Fiber.RuntimeFiber<unknown, unknown>): Step => {
  switch (state._tag) {
    case "Starting":
      return state.reason === undefined
        ? stay({ _tag: "Running", body })
        : { state: { _tag: "Ending", reason: state.reason, hasBodyCompleted: false, body }, stop: true }
    case "Running":
    case "Ending":
    case "Ended":
      return stay(state)
  }
}

/** The body ended by itself (`hasCompleted`: it succeeded, so its writes may still go in with the commit). */
export const bodyEnded = (state: State, hasCompleted: boolean): Step => {
  switch (state._tag) {
    case "Running":
      return stay({ _tag: "Ending", reason: undefined, hasBodyCompleted: hasCompleted, body: state.body })
    case "Starting":
    case "Ending":
    case "Ended":
      return stay(state)
  }
}

/** The outcome: once, from any state but `Ended`. */
export const decide = (state: State, outcome: RunOutcome): Step =>
  state._tag === "Ended" ? stay(state) : stay({ _tag: "Ended", outcome })

/** The reason recorded so far, if any. */
export const reasonOf = (state: State): CancelReason | undefined =>
  state._tag === "Starting" || state._tag === "Ending" ? state.reason : undefined

/** The body's fiber, once forked (until the outcome is decided). */
export const bodyOf = (state: State): Fiber.RuntimeFiber<unknown, unknown> | undefined =>
  state._tag === "Running" || state._tag === "Ending" ? state.body : undefined

/** Whether a write staged now may still go in: while starting or running, or after a body that completed. */
export const acceptsWrites = (state: State): boolean =>
  state._tag === "Starting" || state._tag === "Running" || (state._tag === "Ending" && state.hasBodyCompleted)

/** Whether the run was told to stop (by a cancel or an interruption), as opposed to ending by itself. */
export const isStopping = (state: State): boolean =>
  (state._tag === "Starting" || state._tag === "Ending") && state.reason !== undefined
