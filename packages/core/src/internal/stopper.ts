import type { Effect, Fiber, FiberId } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { SubtaskEntry } from "./context.js"
import { Once } from "./once.js"

/**
 * How a run stops its tree: signal first (its model requests abort in the very call), then its fibers. A class: its
 * methods are shared by every run rather than closures of each.
 */
export class Stopper {
  /** Every subtask spawned in the run, in order (append-only): a stop interrupts them all at once. */
  readonly subtasks: Array<SubtaskEntry> = []
  /** The controllers of the requests in flight; made with the first. */
  private controllers: Set<AbortController> | undefined = undefined
  private readonly isStopped = new Once<void>()
  /** Marks the run stopped (an observer of the body's fiber). */
  readonly markStopped = (): void => void this.isStopped.unsafeDone(undefined)

  /**
   * Done when the body ended or the tree was told to stop. For the run's own wait only: its interruption tells the
   * tree to stop, which sets it (`Once.awaitUntilSet`).
   */
  get stopped(): Effect.Effect<void> {
    return this.isStopped.awaitUntilSet
  }

  /**
   * A signal for one model request, already aborted when the run is stopping (`reason`), else aborted by `stop`;
   * `release` once the request is over. One controller per request, each with its provider's listeners only: a
   * single signal shared by a tree's concurrent requests would collect a listener per request.
   */
  requestSignal(reason: CancelReason | undefined): { readonly signal: AbortSignal; readonly release: () => void } {
    const controller = new AbortController()
    // The reason is the signal's: a plain value, no DOMException with its stack trace for every request.
    if (reason !== undefined) controller.abort(reason)
    else (this.controllers ??= new Set()).add(controller)
    return { signal: controller.signal, release: () => void this.controllers?.delete(controller) }
  }

  /** Aborts every in-flight request with `reason`, then interrupts the body and every subtask, without waiting. */
  stop(reason: CancelReason, body: Fiber.RuntimeFiber<unknown, unknown> | undefined, requester: FiberId.FiberId) {
    const controllers = this.controllers
    if (controllers !== undefined) {
      for (const controller of controllers) controller.abort(reason)
      controllers.clear()
    }
    body?.unsafeInterruptAsFork(requester)
    // The whole tree at once: subtasks stop alongside the body, not after it.
    for (const subtask of this.subtasks) subtask.fiber.unsafeInterruptAsFork(requester)
    this.markStopped()
  }
}

export const make = (): Stopper => new Stopper()
