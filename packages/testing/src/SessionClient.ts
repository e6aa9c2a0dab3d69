/**
 * A small HTTP client for testing servers that mount Tether's routes, on raw
 * `node:http` sockets so a test controls the connection: each request has its
 * own socket (no keep-alive), and `destroy` drops it the way a closed browser
 * tab does. `openEventStream` parses Server-Sent Events as they arrive.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SessionClient } from "@tether/testing"
 *
 * const dropMidStream = (port: number) =>
 *   Effect.gen(function* () {
 *     const stream = yield* SessionClient.openEventStream({
 *       port,
 *       method: "POST",
 *       path: "/sessions/s1/messages",
 *       headers: SessionClient.bearer("alice-token"),
 *       body: JSON.stringify({ message: "hi" })
 *     })
 *     yield* stream.waitFor((events) => events.some((e) => e.event === "TextDelta"))
 *     yield* stream.destroy // the server should now cancel the run with ClientDisconnected
 *   })
 * ```
 *
 * @since 0.1.0
 */
import * as Http from "node:http"
import { Effect } from "effect"

/**
 * One parsed event: `id`, `event` and the JSON of its `data`.
 *
 * @since 0.1.0
 */
export interface SseEvent {
  readonly id: number | undefined
  readonly event: string
  readonly data: any
}

/** @since 0.1.0 */
export interface Request {
  readonly port: number
  readonly method: "GET" | "POST"
  readonly path: string
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly body?: string | undefined
}

/** @since 0.1.0 */
export interface JsonResponse {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly json: any
}

const send = (request: Request) =>
  Http.request({
    host: "127.0.0.1",
    port: request.port,
    method: request.method,
    path: request.path,
    agent: false,
    headers: {
      ...(request.body === undefined
        ? {}
        : { "content-type": "application/json", "content-length": String(Buffer.byteLength(request.body)) }),
      ...request.headers
    }
  })

/**
 * Sends a request and reads its whole answer as JSON.
 *
 * @since 0.1.0
 */
export const requestJson = (request: Request): Effect.Effect<JsonResponse> =>
  Effect.async<JsonResponse>((resume) => {
    const req = send(request)
    req.on("error", (error) => resume(Effect.die(error)))
    req.on("response", (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (text += chunk))
      res.on("end", () => {
        let json: unknown = undefined
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch {
          json = { unparsed: text }
        }
        resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, json }))
      })
    })
    req.end(request.body)
    return Effect.sync(() => req.destroy())
  })

/**
 * An event stream being read: the events so far, and ways to wait, end or drop it.
 *
 * @since 0.1.0
 */
export interface EventStream {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  /** Every event parsed so far (comments skipped). */
  readonly events: ReadonlyArray<SseEvent>
  /** Non-SSE body, for error answers. */
  readonly text: () => string
  /** Waits until `predicate` holds for the events so far. */
  readonly waitFor: (predicate: (events: ReadonlyArray<SseEvent>) => boolean) => Effect.Effect<ReadonlyArray<SseEvent>>
  /** Waits for the server to end the response; returns every event. */
  readonly ended: Effect.Effect<ReadonlyArray<SseEvent>>
  /** Drops the connection now (the socket is destroyed, no more bytes are read). */
  readonly destroy: Effect.Effect<void>
}

const parseFrame = (frame: string): SseEvent | undefined => {
  let id: number | undefined
  let event = "message"
  const data: Array<string> = []
  for (const line of frame.split("\n")) {
    if (line.startsWith(":") || line === "") continue
    const colon = line.indexOf(":")
    const field = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
    if (field === "id") id = Number(value)
    else if (field === "event") event = value
    else if (field === "data") data.push(value)
  }
  if (data.length === 0) return undefined
  return { id, event, data: JSON.parse(data.join("\n")) }
}

/**
 * Opens an event stream (POST with a body, or GET); resolves once the response headers arrived.
 *
 * @since 0.1.0
 */
export const openEventStream = (request: Request): Effect.Effect<EventStream> =>
  Effect.async<EventStream>((resume) => {
    const req = send(request)
    req.on("error", () => {})
    req.on("response", (res) => {
      const events: Array<SseEvent> = []
      const waiters = new Set<() => void>()
      let buffer = ""
      let raw = ""
      let isEnded = false
      const notify = () => waiters.forEach((check) => check())
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        raw += chunk
        buffer += chunk
        let end = buffer.indexOf("\n\n")
        while (end !== -1) {
          const parsed = parseFrame(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          if (parsed !== undefined) events.push(parsed)
          end = buffer.indexOf("\n\n")
        }
        notify()
      })
      const finish = () => {
        isEnded = true
        notify()
      }
      res.on("end", finish)
      res.on("close", finish)
      res.on("error", finish)
      const waitUntil = (done: () => boolean) =>
        Effect.async<void>((resumeWait) => {
          const check = () => {
            if (done()) {
              waiters.delete(check)
              resumeWait(Effect.void)
            }
          }
          waiters.add(check)
          check()
          return Effect.sync(() => void waiters.delete(check))
        })
      resume(
        Effect.succeed({
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          text: () => raw,
          waitFor: (predicate) =>
            Effect.as(
              waitUntil(() => predicate(events) || isEnded),
              events
            ).pipe(
              Effect.flatMap((all) =>
                predicate(all) ? Effect.succeed(all) : Effect.dieMessage(`stream ended before the condition held`)
              )
            ),
          ended: Effect.as(
            waitUntil(() => isEnded),
            events
          ),
          destroy: Effect.sync(() => {
            res.destroy()
            req.destroy()
          })
        })
      )
    })
    req.end(request.body)
  })

/**
 * An `authorization: Bearer` header.
 *
 * @since 0.1.0
 */
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
