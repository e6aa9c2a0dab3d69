/**
 * Synchronous work that must stay in-process (it touches state a worker thread
 * cannot share) and still stops when its run is cancelled.
 *
 * A synchronous loop never gives the event loop back, so nothing can interrupt
 * it while it runs, not even a flag set by the canceller: the canceller itself
 * needs the thread. The work is therefore written as a generator: every
 * `yield` is a checkpoint. `Checkpoint.run` drives it in slices of a few
 * milliseconds and gives the thread back between slices; an interruption that
 * arrives meanwhile stops the work at its next checkpoint and runs the
 * generator's `finally` blocks.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Checkpoint, Tool } from "@tether/core"
 *
 * const primes = Tool.make("count_primes", {
 *   description: "Counts the primes below n",
 *   input: Schema.Struct({ n: Schema.Number }),
 *   output: Schema.Number,
 *   handler: ({ n }) =>
 *     Checkpoint.run(function* () {
 *       let count = 0
 *       for (let i = 2; i < n; i++) {
 *         let isPrime = true
 *         for (let d = 2; d * d <= i; d++) if (i % d === 0) isPrime = false
 *         if (isPrime) count++
 *         yield // a checkpoint
 *       }
 *       return count
 *     })
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Duration, Effect, Schema } from "effect"

/** The work threw. @since 0.1.0 */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  message: Schema.String,
  error: Schema.Defect
}) {}

/** @since 0.1.0 */
export interface Options {
  /** How long the work runs before the thread is given back. Default 10 milliseconds. */
  readonly slice?: Duration.DurationInput | undefined
}

/** `setImmediate` where the runtime has it (Node, Bun, Deno), else a zero timeout (workerd, browsers). */
const immediate = globalThis as {
  readonly setImmediate?: (callback: () => void) => unknown
  readonly clearImmediate?: (handle: unknown) => void
}
const runSoon = (callback: () => void): (() => void) => {
  if (immediate.setImmediate !== undefined && immediate.clearImmediate !== undefined) {
    const handle = immediate.setImmediate(callback)
    const clear = immediate.clearImmediate
    return () => clear(handle)
  }
  const handle = setTimeout(callback, 0)
  return () => clearTimeout(handle)
}

/**
 * Gives the thread back until the event loop has run its timers and I/O.
 * `Effect.yieldNow` would not do: the default scheduler resumes it on a
 * microtask and lets timers run only once every 2048 yields.
 */
const giveBackThread: Effect.Effect<void> = Effect.async<void>((resume) => {
  const cancel = runSoon(() => resume(Effect.void))
  return Effect.sync(cancel)
})

const failure = (error: unknown) =>
  new CheckpointError({ message: error instanceof Error ? error.message : String(error), error })

/**
 * Runs a generator of synchronous work whose every `yield` is a checkpoint.
 * The work stops at the first checkpoint after an interruption (its `finally`
 * blocks run); it is never resumed. A throw fails the Effect with `CheckpointError`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Checkpoint } from "@tether/core"
 *
 * declare const rows: ReadonlyArray<string>
 * declare const index: (row: string) => void
 * const indexAll = Checkpoint.run(function* () {
 *   for (const row of rows) {
 *     index(row)
 *     yield
 *   }
 *   return rows.length
 * })
 * ```
 *
 * @since 0.1.0
 */
export const run = <A>(
  work: () => Generator<unknown, A, undefined>,
  options?: Options
): Effect.Effect<A, CheckpointError> =>
  Effect.suspend(() => {
    const sliceMillis = Duration.toMillis(Duration.decode(options?.slice ?? "10 millis"))
    const steps = work()
    let isFinished = false
    const slice = (): Effect.Effect<A, CheckpointError> => {
      const deadline = performance.now() + sliceMillis
      try {
        while (true) {
          const next = steps.next()
          if (next.done === true) {
            isFinished = true
            return Effect.succeed(next.value)
          }
          if (performance.now() >= deadline) break
        }
      } catch (error) {
        isFinished = true
        return Effect.fail(failure(error))
      }
      return Effect.zipRight(giveBackThread, Effect.suspend(slice))
    }
    return slice().pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          if (isFinished) return
          isFinished = true
          try {
            steps.return(undefined as A)
          } catch {
            // A `finally` block of interrupted work threw; the work is stopped either way.
          }
        })
      )
    )
  })
