import { Effect, FiberRef } from "effect"

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
