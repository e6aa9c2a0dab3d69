/**
 * A run's events as Server-Sent Events: one frame per event, `id:` its `seq`
 * (so a client resumes with `Last-Event-ID`), `event:` its `_tag`, `data:` the
 * event as JSON (Schema-encoded). Comment frames keep idle connections alive.
 * The events that are ready together go out as one write (`encodeAll`): a run
 * streaming many small text deltas costs one socket write per batch, not per event.
 *
 * @example
 * ```ts
 * import { ServerSentEvents } from "@tether/http"
 * import { RunEvent } from "@tether/core"
 *
 * const frame = ServerSentEvents.encode(new RunEvent.TextDelta({ runId: "r", seq: 3, agent: "a", text: "Hi" }))
 * // 'id: 3\nevent: TextDelta\ndata: {"runId":"r","seq":3,"agent":"a","text":"Hi","_tag":"TextDelta"}\n\n'
 * ```
 *
 * @since 0.1.0
 */
import type { HttpServerRequest } from "@effect/platform"
import { HttpServerResponse } from "@effect/platform"
import { Chunk, Duration, Effect, Option, Schedule, Schema, Stream } from "effect"
import { RunEvent } from "@tether/core"
import { BadRequest } from "./RouteError.js"
import { scrub } from "./internal/clientText.js"

const encodeEvent = Schema.encodeSync(RunEvent.RunEvent)

/** A copy of `event` (an instance of its class, as the Schema encoder wants) with `field` set to `text`. */
const withText = <E extends RunEvent.RunEvent>(event: E, field: "error" | "reason", text: string): E =>
  Object.assign(Object.create(Object.getPrototypeOf(event) as object) as E, event, { [field]: text })

/** An event as a client may see it: the error texts of failures without stack frames or server paths. */
const forClient = (event: RunEvent.RunEvent): RunEvent.RunEvent => {
  switch (event._tag) {
    case "RunFailed":
    case "ToolFailed":
      return withText(event, "error", scrub(event.error))
    case "RolledBack":
      return withText(event, "reason", scrub(event.reason))
    default:
      return event
  }
}

/**
 * The JSON of an event's `data:` line. `TextDelta`, one per streamed chunk and the bulk of a stream, is written out
 * directly: the same text as the Schema encoder's (a test holds them equal), without its intermediate objects.
 */
const dataOf = (event: RunEvent.RunEvent): string =>
  event._tag === "TextDelta"
    ? `{"runId":${JSON.stringify(event.runId)},"seq":${JSON.stringify(event.seq)},"agent":${JSON.stringify(event.agent)},"text":${JSON.stringify(event.text)},"_tag":"TextDelta"}`
    : JSON.stringify(encodeEvent(forClient(event)))

/**
 * The SSE frame of one event. The error texts of `RunFailed`, `ToolFailed` and `RolledBack` lose their stack frames
 * and server paths (`<path>` stands in): what reaches a client never shows the server's code or files.
 *
 * @since 0.1.0
 */
export const encode = (event: RunEvent.RunEvent): string =>
  `id: ${event.seq}\nevent: ${event._tag}\ndata: ${dataOf(event)}\n\n`

const utf8 = new TextEncoder()

/**
 * The frames of `events`, in order, as the bytes of one write.
 *
 * @since 0.1.0
 */
export const encodeAll = (events: Iterable<RunEvent.RunEvent>): Uint8Array => {
  let frames = ""
  for (const event of events) frames += encode(event)
  return utf8.encode(frames)
}

/**
 * A comment frame: ignored by clients, it keeps proxies from closing an idle stream.
 *
 * @since 0.1.0
 */
export const keepAlive = ": keep-alive\n\n"

const keepAliveBytes = utf8.encode(keepAlive)

/**
 * The response headers of an event stream.
 *
 * @since 0.1.0
 */
export const headers: Readonly<Record<string, string>> = {
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
  // An event stream is the whole life of its connection: closing it after the last event
  // lets a server that is shutting down finish at once instead of waiting for keep-alive.
  connection: "close"
}

/**
 * The keep-alive interval used when none is given.
 *
 * @since 0.1.0
 */
export const defaultKeepAliveInterval: Duration.Duration = Duration.seconds(15)

/** Most events one write carries. */
const maxBatch = 1024

/**
 * `events` re-chunked into what is ready together: a reader on its own fiber takes them from the source as they
 * come, and each pull here takes every event waiting (up to `maxBatch`), however the source chunked them.
 */
const readyTogether = <A>(events: Stream.Stream<A>): Stream.Stream<A> =>
  Stream.unwrapScoped(
    Effect.map(Stream.toQueueOfElements(events, { capacity: maxBatch }), (queue) =>
      Stream.flattenExitOption(Stream.fromQueue(queue, { maxChunkSize: maxBatch }))
    )
  )

/**
 * Streams `events` as an SSE response, with a keep-alive comment every
 * `keepAliveInterval` (default 15 seconds) until the events end. The events
 * ready at once (those a run emitted in one tick, or while the client was slow
 * to read) are written together, as one `Uint8Array`.
 *
 * @since 0.1.0
 */
export const response = (
  events: Stream.Stream<RunEvent.RunEvent>,
  options?: {
    readonly keepAliveInterval?: Duration.DurationInput | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
  }
): HttpServerResponse.HttpServerResponse => {
  const frames = readyTogether(events).pipe(
    Stream.mapChunks((batch) => (Chunk.isEmpty(batch) ? Chunk.empty() : Chunk.of(encodeAll(batch)))),
    Stream.merge(
      Stream.as(
        Stream.fromSchedule(Schedule.spaced(options?.keepAliveInterval ?? defaultKeepAliveInterval)),
        keepAliveBytes
      ),
      { haltStrategy: "left" }
    )
  )
  return HttpServerResponse.stream(frames, {
    contentType: "text/event-stream",
    headers: { ...headers, ...options?.headers }
  })
}

/**
 * Where a client resumes: the `Last-Event-ID` header, else the `after` query
 * parameter; `None` when neither is given. A value that is not a non-negative
 * integer is a `BadRequest`.
 *
 * @since 0.1.0
 */
export const resumeAfter = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<Option.Option<number>, BadRequest> =>
  Effect.suspend(() => {
    const header = request.headers["last-event-id"]
    const raw = (header ?? new URL(request.url, "http://localhost").searchParams.get("after") ?? "").trim()
    if (raw === "") return Effect.succeedNone
    return /^\d{1,15}$/.test(raw)
      ? Effect.succeedSome(Number(raw))
      : Effect.fail(
          new BadRequest({ message: `Last-Event-ID (or ?after=) must be an event id, got "${raw.slice(0, 40)}"` })
        )
  })
