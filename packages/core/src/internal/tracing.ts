import { Effect, FiberRef } from "effect"
import type { Exit, Tracer } from "effect"
import { flatten } from "./flatten.js"

/**
 * `Effect.withSpan`, or nothing where tracing is off (`Layer.setTracerEnabled(false)`,
 * `Effect.withTracerEnabled(false)`). Effect would still make a no-op span, and a context to carry it, for each; a
 * span live for a whole run costs a few KiB and tens of microseconds.
 */
export const withSpan =
  (name: string, attributes: Record<string, unknown>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiberRuntime((fiber) =>
      fiber.getFiberRef(FiberRef.currentTracerEnabled)
        ? Effect.withSpan(self, name, { attributes, captureStackTrace: false })
        : self
    )

/** A span started by `openSpan`, and how to end it. */
export interface OpenSpan {
  readonly span: Tracer.Span
  /** Ends the span with `exit` (once; later calls change nothing). */
  readonly end: (exit: Exit.Exit<unknown, unknown>) => void
}

const zero = BigInt(0)

/**
 * A span started now, as `Effect.withSpan` starts one (its parent is the fiber's current span), for code that sets
 * it as the parent span and ends it itself: `Effect.withSpan` holds a scope of several suspended effects for as long
 * as the span lasts, which a run's body and each of its turns would pay for while live. `undefined` where tracing
 * is off.
 */
export const openSpan = (name: string, attributes: Record<string, unknown>): Effect.Effect<OpenSpan | undefined> =>
  Effect.withFiberRuntime((fiber) => {
    if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return Effect.succeed(undefined)
    const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
    return Effect.clockWith((clock) =>
      Effect.map(Effect.makeSpan(name, { attributes, captureStackTrace: false }), (span): OpenSpan => {
        // Effect's tracer builds its ids a character at a time: a chain of a few dozen pieces for a trace id's 32.
        flatten(span.traceId)
        flatten(span.spanId)
        return {
          span,
          end: (exit) => {
            if (span.status._tag !== "Ended") span.end(timing ? clock.unsafeCurrentTimeNanos() : zero, exit)
          }
        }
      })
    )
  })
