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
import { Chunk, Duration, Effect, Exit, Option, Queue, Schema, Stream } from "effect"
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

/** What the reader and the keep-alive timer hand to the response: an event, a keep-alive tick, or the end. */
type Item = RunEvent.RunEvent | typeof keepAliveTick | Ended

const keepAliveTick = Symbol.for("@tether/http/ServerSentEvents/keepAliveTick")

class Ended {
  constructor(readonly exit: Exit.Exit<void>) {}
}

/**
 * The frames of the items of one pull: the events as one write, or a keep-alive comment when there is no event; and
 * how the events ended, when they did.
 */
const framesOf = (items: Chunk.Chunk<Item>): { readonly bytes: Uint8Array | undefined; readonly ended?: Ended } => {
  const events: Array<RunEvent.RunEvent> = []
  let isKeepAliveDue = false
  for (const item of items) {
    if (item === keepAliveTick) isKeepAliveDue = true
    else if (item instanceof Ended) {
      return { bytes: events.length > 0 ? encodeAll(events) : undefined, ended: item }
    } else events.push(item)
  }
  return { bytes: events.length > 0 ? encodeAll(events) : isKeepAliveDue ? keepAliveBytes : undefined }
}

/**
 * Streams `events` as an SSE response, with a keep-alive comment every
 * `keepAliveInterval` (default 15 seconds) until the events end. The events
 * ready at once (those a run emitted in one tick, or while the client was slow
 * to read) are written together, as one `Uint8Array`.
 *
 * `onInterrupt` runs first when the response is interrupted while it waits for the next event (platform-node
 * interrupts it when the client goes away before the events ended): before the response's stream and `events` are
 * torn down, so what it cancels stops at once. It runs at most once, and not at all when the events ended. (An
 * interruption at another moment, e.g. while a write waits for a slow client, is seen by the finalizers of `events`
 * as before: pair it with one, as `SessionRoutes` does.)
 *
 * @example
 * ```ts
 * import { HttpRouter } from "@effect/platform"
 * import { Effect } from "effect"
 * import { Agent, AgentRun, CancelReason } from "@tether/core"
 * import { ServerSentEvents } from "@tether/http"
 *
 * const assistant = Agent.make({ name: "assistant" })
 * // Streams a run, cancelled the moment its client goes away mid-stream.
 * const chat = Effect.map(AgentRun.start(assistant, "Hello"), (run) =>
 *   ServerSentEvents.response(run.events, { onInterrupt: run.requestCancel(new CancelReason.ClientDisconnected()) })
 * )
 * const router = HttpRouter.empty.pipe(HttpRouter.post("/chat", chat))
 * ```
 *
 * @since 0.1.0
 */
export const response = (
  events: Stream.Stream<RunEvent.RunEvent>,
  options?: {
    readonly keepAliveInterval?: Duration.DurationInput | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly onInterrupt?: Effect.Effect<void> | undefined
  }
): HttpServerResponse.HttpServerResponse => {
  const interval = options?.keepAliveInterval ?? defaultKeepAliveInterval
  const onInterrupt = options?.onInterrupt
  // One queue, filled by a reader of `events` and a keep-alive timer, each on a fiber of its own; the server's fiber
  // takes what is waiting (up to `maxBatch`) at each pull. So the server's fiber waits on nothing but this queue's
  // take, and an interruption (the client went away) reaches `onInterrupt` first, before anything unwinds.
  const frames = Stream.unwrapScoped(
    Effect.gen(function* () {
      const queue = yield* Effect.acquireRelease(Queue.bounded<Item>(maxBatch), Queue.shutdown)
      yield* Stream.runForEachChunk(events, (chunk) => Queue.offerAll(queue, chunk)).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Queue.offer(queue, new Ended(exit))),
        Effect.forkScoped
      )
      yield* Queue.offer(queue, keepAliveTick).pipe(Effect.delay(interval), Effect.forever, Effect.forkScoped)
      // What is waiting, or the first item to come and whatever came with it (an `offerAll` hands its first item to
      // the waiting taker and queues the rest).
      const take = Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (items) =>
        items.length >= maxBatch
          ? Effect.succeed(items)
          : Effect.map(Queue.takeUpTo(queue, maxBatch - items.length), (rest) => Chunk.appendAll(items, rest))
      )
      const next = onInterrupt === undefined ? take : Effect.onInterrupt(take, () => onInterrupt)
      let isEnded = false
      const pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>> = Effect.suspend(() =>
        isEnded
          ? Effect.fail(Option.none())
          : Effect.flatMap(next, (items) => {
              const { bytes, ended } = framesOf(items)
              if (ended !== undefined) {
                isEnded = true
                if (Exit.isFailure(ended.exit)) return Effect.failCause(ended.exit.cause)
              }
              if (bytes !== undefined) return Effect.succeed(Chunk.of(bytes))
              return isEnded ? Effect.fail(Option.none()) : pull
            })
      )
      return Stream.repeatEffectChunkOption(pull)
    })
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
