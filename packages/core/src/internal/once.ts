import { Effect, Option } from "effect"

/**
 * A value set once, and awaited: what a run needs of a `Deferred` (its outcome, its fiber, its stop), as a class.
 * Every `Deferred` is an object literal spread from a prototype, which gets a hidden class of its own (a few
 * hundred bytes each, three per live run); these share one.
 */
export class Once<A> {
  private isSet = false
  private value: A | undefined = undefined
  private waiters: Array<(value: A) => void> | undefined = undefined

  /** Sets the value and wakes every waiter, in the order they came; false (nothing changes) if already set. */
  unsafeDone(value: A): boolean {
    if (this.isSet) return false
    this.isSet = true
    this.value = value
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) for (const wake of waiters) wake(value)
    return true
  }

  /** `unsafeDone`, as an effect. */
  done(value: A): Effect.Effect<boolean> {
    return Effect.sync(() => this.unsafeDone(value))
  }

  /** The value, if set. */
  unsafePoll(): Option.Option<A> {
    return this.isSet ? Option.some(this.value as A) : Option.none()
  }

  /** Waits for the value (interruptible: an interrupted waiter is forgotten). */
  get await(): Effect.Effect<A> {
    return Effect.async<A>((resume) => {
      if (this.isSet) return resume(Effect.succeed(this.value as A))
      const wake = (value: A) => resume(Effect.succeed(value))
      ;(this.waiters ??= []).push(wake)
      return Effect.sync(() => {
        const waiters = this.waiters
        const at = waiters === undefined ? -1 : waiters.indexOf(wake)
        if (at >= 0) waiters!.splice(at, 1)
      })
    })
  }

  /**
   * Waits until every cell of `cells` is set: one wait (a waker on each cell not yet set), not one per cell, each of
   * which resumes its fiber on its own (interruptible: an interrupted wait's wakers are forgotten).
   */
  static awaitAll<A>(cells: ReadonlyArray<Once<A>>): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const pending = cells.filter((cell) => !cell.isSet)
      if (pending.length === 0) return resume(Effect.void)
      let left = pending.length
      const wake = () => {
        if (--left === 0) resume(Effect.void)
      }
      for (const cell of pending) (cell.waiters ??= []).push(wake)
      return Effect.sync(() => {
        for (const cell of pending) {
          const waiters = cell.waiters
          const at = waiters === undefined ? -1 : waiters.indexOf(wake)
          if (at >= 0) waiters!.splice(at, 1)
        }
      })
    })
  }

  /**
   * `await` for a waiter whose interruption leads to the value being set (an interrupted run's own wait for its
   * stop): it stays registered until then (waking it changes nothing), and it holds no canceler, which costs an
   * interruption handler (several continuations) for as long as it waits.
   */
  get awaitUntilSet(): Effect.Effect<A> {
    return Effect.async<A>((resume) => {
      if (this.isSet) return resume(Effect.succeed(this.value as A))
      ;(this.waiters ??= []).push((value) => resume(Effect.succeed(value)))
    })
  }
}
