import type { Effect, Fiber, FiberId } from "effect"
import type { CancelReason } from "../CancelReason.js"
import type { SubtaskEntry } from "./context.js"
import { Once } from "./once.js"
import { RequestStop } from "./requestStop.js"

/**
 * How a run stops its tree: signal first (its model requests abort in the very call), then its fibers. A class: its
 * methods are shared by every run rather than closures of each.
 */
export class Stopper {
  /** Every subtask spawned in the run, in order (append-only): a stop interrupts them all at once. */
  readonly subtasks: Array<SubtaskEntry> = []
  /** The requests in flight; made with the first. */
  private requests: Set<RequestStop> | undefined = undefined
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
   * The stop of one model request, already aborted when the run is stopping (`reason`), else aborted by `stop`;
   * `release` it once the request is over. One per request, each with its provider's listeners only: a single
   * signal shared by a tree's concurrent requests would collect a listener per request.
   */
  requestStop(reason: CancelReason | undefined): RequestStop {
    if (reason !== undefined) {
      const stop = new RequestStop(undefined)
      // The reason is the signal's: a plain value, no DOMException with its stack trace for every request.
      stop.abort(reason)
      return stop
    }
    return new RequestStop((this.requests ??= new Set()))
  }

  /** Aborts every in-flight request with `reason`, then interrupts the body and every subtask, without waiting. */
  stop(reason: CancelReason, body: Fiber.RuntimeFiber<unknown, unknown> | undefined, requester: FiberId.FiberId) {
    const requests = this.requests
    if (requests !== undefined) {
      for (const request of requests) request.abort(reason)
      requests.clear()
    }
    body?.unsafeInterruptAsFork(requester)
    // The whole tree at once: subtasks stop alongside the body, not after it.
    for (const subtask of this.subtasks) subtask.fiber.unsafeInterruptAsFork(requester)
    this.markStopped()
  }
}

export const make = (): Stopper => new Stopper()
