import { Duration, Effect, Exit, FiberRef } from "effect"
import type { Scope } from "effect"
import { Overloaded } from "../RouteError.js"

/**
 * Places for live runs in this process: at most `maxLiveRuns` taken at once. A start past them waits in a queue of
 * at most `maxQueuedStarts` for at most `queueTimeout`, first come first served, or is refused with `Overloaded` at
 * once. A place is handed from a run that ended to the first start waiting, so a waiting start is never overtaken by
 * one that came later. Plain counters: every change happens in one synchronous step.
 *
 * A start may `hold` its place (or its slot in the queue) before it does anything costly (authentication, the body,
 * the store): a burst of starts past the capacity is then refused at the door, each start counted as it arrives, not
 * only once it got as far as `acquire`.
 */
export interface Admission {
  /**
   * A place, and the function that gives it back (once; later calls do nothing). When this fiber holds one (`hold`),
   * that place (or that slot in the queue).
   */
  readonly acquire: Effect.Effect<() => void, Overloaded>
  /**
   * Takes a place, or a slot in the queue, for this fiber's next `acquire`; held until that `acquire` or the end of
   * the scope, whichever comes first. Fails at once when every place is taken and the queue is full.
   */
  readonly hold: Effect.Effect<void, Overloaded, Scope.Scope>
  /** The refusal a start arriving now would get at once, if any. */
  readonly refusal: () => Overloaded | undefined
}

/** What a fiber holds: a place (counted in `live`) or a slot in the queue (counted in `heading`). */
interface Hold {
  readonly kind: "place" | "queue"
  isSpent: boolean
}

export interface Options {
  readonly maxLiveRuns: number
  readonly maxQueuedStarts: number
  readonly queueTimeout: Duration.DurationInput
  readonly retryAfter: Duration.DurationInput
}

export const make = (options: Options): Admission => {
  let live = 0
  // Starts holding a slot in the queue that have not reached it yet.
  let heading = 0
  const held = FiberRef.unsafeMake<Hold | undefined>(undefined)
  // Insertion order: the first waiter is the first granted.
  const waiting = new Set<() => void>()
  const retryAfterSeconds = Math.max(1, Math.ceil(Duration.toSeconds(Duration.decode(options.retryAfter))))
  // Made once each: a refusal is a value, and making an error captures a stack, which costs more than the rest of a
  // refusal together (a burst refuses hundreds of starts).
  const full = new Overloaded({
    limit: options.maxLiveRuns,
    retryAfterSeconds,
    message: `the server has ${options.maxLiveRuns} runs going, as many as it serves well; try again`
  })
  const waitedTooLong = new Overloaded({
    limit: options.maxLiveRuns,
    retryAfterSeconds,
    message: `the server has ${options.maxLiveRuns} runs going and this start waited too long for one to end; try again`
  })
  const overloaded = (queued: boolean) => (queued ? waitedTooLong : full)

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

  const isFull = () => live >= options.maxLiveRuns && waiting.size + heading >= options.maxQueuedStarts

  /** Gives back what `hold` took, unless `acquire` spent it. */
  const giveBackHold = (hold: Hold) => {
    if (hold.isSpent) return
    hold.isSpent = true
    if (hold.kind === "place") giveBack()
    else heading--
  }

  return {
    refusal: () => (isFull() ? full : undefined),
    hold: Effect.uninterruptible(
      Effect.suspend(() => {
        if (isFull()) return Effect.fail(overloaded(false))
        const hold: Hold = { kind: live < options.maxLiveRuns ? "place" : "queue", isSpent: false }
        if (hold.kind === "place") live++
        else heading++
        return Effect.zipRight(
          Effect.addFinalizer(() => Effect.sync(() => giveBackHold(hold))),
          FiberRef.set(held, hold)
        )
      })
    ),
    acquire: Effect.flatMap(FiberRef.get(held), (hold) => {
      if (hold !== undefined && !hold.isSpent) {
        hold.isSpent = true
        if (hold.kind === "place") return Effect.succeed(releaser())
        heading--
      }
      if (live < options.maxLiveRuns) {
        live++
        return Effect.succeed(releaser())
      }
      return waiting.size < options.maxQueuedStarts ? wait : Effect.fail(overloaded(false))
    })
  }
}
