import { Duration, Effect, Exit } from "effect"
import { Overloaded } from "../RouteError.js"

/**
 * Places for live runs in this process: at most `maxLiveRuns` taken at once. A start past them waits in a queue of
 * at most `maxQueuedStarts` for at most `queueTimeout`, first come first served, or is refused with `Overloaded` at
 * once. A place is handed from a run that ended to the first start waiting, so a waiting start is never overtaken by
 * one that came later. Plain counters: every change happens in one synchronous step.
 */
export interface Admission {
  /** A place, and the function that gives it back (once; later calls do nothing). */
  readonly acquire: Effect.Effect<() => void, Overloaded>
  /** Fails when `acquire` would now fail at once (every place taken, the queue full). */
  readonly check: Effect.Effect<void, Overloaded>
}

export interface Options {
  readonly maxLiveRuns: number
  readonly maxQueuedStarts: number
  readonly queueTimeout: Duration.DurationInput
  readonly retryAfter: Duration.DurationInput
}

export const make = (options: Options): Admission => {
  let live = 0
  // Insertion order: the first waiter is the first granted.
  const waiting = new Set<() => void>()
  const retryAfterSeconds = Math.max(1, Math.ceil(Duration.toSeconds(Duration.decode(options.retryAfter))))
  const overloaded = (queued: boolean) =>
    new Overloaded({
      limit: options.maxLiveRuns,
      retryAfterSeconds,
      message: queued
        ? `the server has ${options.maxLiveRuns} runs going and this start waited too long for one to end; try again`
        : `the server has ${options.maxLiveRuns} runs going, as many as it serves well; try again`
    })

  const giveBack = () => {
    const first = waiting.values().next()
    if (first.done === true) live--
    else {
      waiting.delete(first.value)
      first.value()
    }
  }
  const releaser = () => {
    let isReleased = false
    return () => {
      if (isReleased) return
      isReleased = true
      giveBack()
    }
  }

  const wait = Effect.suspend(() => {
    // Set when a place was handed to this start: from then on it is this start's, whatever happens to its fiber.
    let isGranted = false
    let wake: () => void = () => {}
    const grant = () => {
      isGranted = true
      wake()
    }
    const asleep = Effect.async<void>((resume) => {
      wake = () => resume(Effect.void)
      if (isGranted) return resume(Effect.void)
      waiting.add(grant)
      return Effect.sync(() => void waiting.delete(grant))
    })
    const timed = Effect.timeoutFail(asleep, { duration: options.queueTimeout, onTimeout: () => overloaded(true) })
    // The wait is interruptible even where the caller is not (the routes start runs uninterruptibly): a client that
    // goes away while its start waits stops waiting. What follows it is not, so a place granted is never lost.
    return Effect.uninterruptible(
      Effect.flatMap(Effect.exit(Effect.interruptible(timed)), (exit) => {
        waiting.delete(grant)
        if (!isGranted) return Exit.isFailure(exit) ? Effect.failCause(exit.cause) : Effect.fail(overloaded(true))
        // Granted, even if the deadline or an interruption came at the same time: the place is this start's.
        const release = releaser()
        if (Exit.isFailure(exit) && Exit.isInterrupted(exit)) {
          release()
          return Effect.failCause(exit.cause)
        }
        return Effect.succeed(release)
      })
    )
  })

  return {
    acquire: Effect.suspend(() => {
      if (live < options.maxLiveRuns) {
        live++
        return Effect.succeed(releaser())
      }
      return waiting.size < options.maxQueuedStarts ? wait : Effect.fail(overloaded(false))
    }),
    check: Effect.suspend(() =>
      live < options.maxLiveRuns || waiting.size < options.maxQueuedStarts
        ? Effect.void
        : Effect.fail(overloaded(false))
    )
  }
}
