import { Deferred, Effect, Exit } from "effect"
import type { Fiber, FiberId } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { SubtaskEntry } from "./context.js"

/** How a run stops its tree: signal first (its model requests abort in the very call), then its fibers. */
export interface Stopper {
  /** Every subtask spawned in the run, in order (append-only): a stop interrupts them all at once. */
  readonly subtasks: Array<SubtaskEntry>
  /** Done when the body ended or the tree was told to stop. */
  readonly stopped: Effect.Effect<void>
  readonly markStopped: () => void
  /**
   * A signal for one model request, already aborted when the run is stopping (`reason`), else aborted by `stop`;
   * `release` once the request is over. One controller per request, each with its provider's listeners only: a
   * single signal shared by a tree's concurrent requests would collect a listener per request.
   */
  readonly requestSignal: (reason: CancelReason | undefined) => {
    readonly signal: AbortSignal
    readonly release: () => void
  }
  /** Aborts every in-flight request with `reason`, then interrupts the body and every subtask, without waiting. */
  readonly stop: (
    reason: CancelReason,
    body: Fiber.RuntimeFiber<unknown, unknown> | undefined,
    requester: FiberId.FiberId
  ) => void
}

export const make: Effect.Effect<Stopper> = Effect.map(Deferred.make<void>(), (stopped) => {
  const controllers = new Set<AbortController>()
  const subtasks: Array<SubtaskEntry> = []
  const markStopped = () => void Deferred.unsafeDone(stopped, Exit.void)
  return {
    subtasks,
    stopped: Deferred.await(stopped),
    markStopped,
    requestSignal: (reason) => {
      const controller = new AbortController()
      // The reason is the signal's: a plain value, no DOMException with its stack trace for every request.
      if (reason !== undefined) controller.abort(reason)
      else controllers.add(controller)
      return { signal: controller.signal, release: () => void controllers.delete(controller) }
    },
    stop: (reason, body, requester) => {
      for (const controller of controllers) controller.abort(reason)
      controllers.clear()
      body?.unsafeInterruptAsFork(requester)
      // The whole tree at once: subtasks stop alongside the body, not after it.
      for (const subtask of subtasks) subtask.fiber.unsafeInterruptAsFork(requester)
      markStopped()
    }
  }
})
