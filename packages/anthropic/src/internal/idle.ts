/**
 * The stream idle timeout of one model: a single sweep for all of its in-flight responses, instead of a timer (and
 * a fiber) per turn. The sweep runs only while some response is watched: it sleeps until the earliest moment a
 * watched response could have gone idle, fails those that have, and sleeps again; it is interrupted soon after the
 * last response stops being watched. It sleeps on the clock of the turn that started it, so a `TestClock` drives it.
 */
import { ModelError } from "@tether/core"
import { Duration, Effect, FiberId } from "effect"
import type { Clock, Fiber } from "effect"

/** A response the sweep watches: when it last sent a protocol event, and what to do once it has gone quiet. */
export interface Watched {
  /** When (on the turn's clock) the headers or the latest protocol event arrived; `undefined` before the headers. */
  readonly lastEventAt: number | undefined
  readonly onIdle: (error: ModelError.StreamIdleTimeoutError) => void
}

export interface IdleSweep {
  readonly watch: (clock: Clock.Clock, watched: Watched) => void
  readonly unwatch: (watched: Watched) => void
}

export const make = (idleMillis: number): IdleSweep => {
  const watched = new Set<Watched>()
  let sweeper: Fiber.RuntimeFiber<void> | undefined

  /** Fails every watched response that has gone quiet; the millis until the next one could. */
  const sweep = (now: number): number => {
    let next = idleMillis
    for (const entry of watched) {
      // Before the headers it only waits: the SDK's `requestTimeout` bounds that part.
      if (entry.lastEventAt === undefined) continue
      const left = entry.lastEventAt + idleMillis - now
      if (left > 0) {
        next = Math.min(next, left)
        continue
      }
      watched.delete(entry)
      entry.onIdle(
        new ModelError.StreamIdleTimeoutError({
          message: `the response sent no event for ${idleMillis} ms`,
          idleMillis
        })
      )
    }
    return next
  }

  const loop = (clock: Clock.Clock, millis: number): Effect.Effect<void> =>
    Effect.flatMap(clock.sleep(Duration.millis(millis)), () => {
      const next = sweep(clock.unsafeCurrentTimeMillis())
      if (watched.size > 0) return loop(clock, next)
      sweeper = undefined
      return Effect.void
    })

  /**
   * Stops the sweep once no response is watched, a moment later (a timer of 0 ms): turns that follow one another
   * (a tool loop, runs one after another) keep the same sweep instead of paying for a fiber each, and a process
   * with nothing in flight is not held open by the sweep's timer.
   */
  let stopTimer: ReturnType<typeof setTimeout> | undefined
  const stopIfIdle = () => {
    stopTimer = undefined
    if (watched.size > 0 || sweeper === undefined) return
    sweeper.unsafeInterruptAsFork(FiberId.none)
    sweeper = undefined
  }

  return {
    watch: (clock, entry) => {
      watched.add(entry)
      if (stopTimer !== undefined) {
        clearTimeout(stopTimer)
        stopTimer = undefined
      }
      // A fiber of its own (not a child of the turn's): it outlives the turn that started it, and belongs to no run.
      sweeper ??= Effect.runFork(loop(clock, idleMillis))
    },
    unwatch: (entry) => {
      if (!watched.delete(entry) || watched.size > 0 || sweeper === undefined || stopTimer !== undefined) return
      stopTimer = setTimeout(stopIfIdle, 0)
    }
  }
}
