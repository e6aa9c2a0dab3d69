import { Chunk, Clock, Context, Effect, FiberRef, HashMap, Option, Tracer } from "effect"
import type { Exit } from "effect"
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

/** The nearest of `span` and its ancestors that propagates (as `Effect.makeSpan` picks a parent). */
const propagating = (span: Option.Option<Tracer.AnySpan>): Option.Option<Tracer.AnySpan> =>
  Option.isNone(span) || !Context.get(span.value.context, Tracer.DisablePropagation)
    ? span
    : span.value._tag === "Span"
      ? propagating(span.value.parent)
      : Option.none()

/**
 * A span started now, as `Effect.withSpan` starts one (its parent is the fiber's current span, the fiber's span
 * annotations and links are its own), for code that sets it as the parent span and ends it itself:
 * `Effect.withSpan` holds a scope of several suspended effects for as long as the span lasts, which a run's body and
 * each of its turns would pay for while live. Made with the fiber's tracer directly: `Effect.makeSpan` copies the
 * fiber's refs map for every span (setting the runtime flags it reads). `undefined` where tracing is off.
 */
export const openSpan = (name: string, attributes: Record<string, unknown>): Effect.Effect<OpenSpan | undefined> =>
  Effect.withFiberRuntime((fiber) => {
    if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return Effect.succeed(undefined)
    const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    const parent = propagating(Context.getOption(fiber.currentContext, Tracer.ParentSpan))
    const links = Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks))
    const span = fiber.currentTracer.span(
      name,
      parent,
      Context.empty(),
      links,
      timing ? clock.unsafeCurrentTimeNanos() : zero,
      "internal",
      { attributes, captureStackTrace: false }
    )
    HashMap.forEach(fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations), (value, key) =>
      span.attribute(key, value)
    )
    for (const key of Object.keys(attributes)) span.attribute(key, attributes[key])
    // Effect's tracer builds its ids a character at a time: a chain of a few dozen pieces for a trace id's 32.
    flatten(span.traceId)
    flatten(span.spanId)
    return Effect.succeed<OpenSpan>({
      span,
      end: (exit) => {
        if (span.status._tag !== "Ended") span.end(timing ? clock.unsafeCurrentTimeNanos() : zero, exit)
      }
    })
  })
