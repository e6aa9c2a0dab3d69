/**
 * The round-robin front of `pnpm start:cluster`, over real sockets on loopback, against two plain upstream servers:
 * it rotates, it passes an event stream through as it is written, and a client that goes away takes its upstream
 * request with it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as http from "node:http"
import { SessionClient as Client } from "@tether/testing"
import * as Front from "../src/Front.js"

interface Upstream {
  readonly port: number
  /** Resolved when the request to `/stream` is closed before the upstream ended it. */
  readonly streamClosed: Deferred.Deferred<void>
}

/** An upstream that names itself on `/name` and holds `/stream` open after one event. */
const upstream = (name: string) =>
  Effect.gen(function* () {
    const streamClosed = yield* Deferred.make<void>()
    const server = yield* Effect.acquireRelease(
      Effect.async<http.Server>((resume) => {
        const server = http.createServer((request, response) => {
          if (request.url === "/stream") {
            response.writeHead(200, { "content-type": "text/event-stream" })
            response.write(`id: 1\nevent: Hello\ndata: ${JSON.stringify({ from: name })}\n\n`)
            response.on("close", () => Deferred.unsafeDone(streamClosed, Effect.void))
            return
          }
          response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name }))
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    return { port: (server.address() as { port: number }).port, streamClosed } satisfies Upstream
  })

describe("the round-robin front", () => {
  it.scopedLive("each request goes to the next upstream in turn", () =>
    Effect.gen(function* () {
      const first = yield* upstream("first")
      const second = yield* upstream("second")
      const port = yield* Front.serve({ port: 0, host: "127.0.0.1", upstreams: () => [first.port, second.port] })
      const names = yield* Effect.forEach([1, 2, 3, 4], () =>
        Effect.map(Client.requestJson({ port, method: "GET", path: "/name" }), (answer) => answer.json.name)
      )
      expect(names).toEqual(["first", "second", "first", "second"])
    })
  )

  it.scopedLive(
    "an event stream comes through before the upstream ends it; the client going away closes the upstream request",
    () =>
      Effect.gen(function* () {
        const only = yield* upstream("only")
        const port = yield* Front.serve({ port: 0, host: "127.0.0.1", upstreams: () => [only.port] })
        const stream = yield* Client.openEventStream({ port, method: "GET", path: "/stream" })
        expect(stream.status).toBe(200)
        // The upstream never ends this response: the event arrived because the front does not buffer.
        const events = yield* stream.waitFor((events) => events.length > 0).pipe(Effect.timeout("5 seconds"))
        expect(events[0]).toMatchObject({ event: "Hello", data: { from: "only" } })
        expect(yield* Deferred.isDone(only.streamClosed)).toBe(false)
        yield* stream.destroy
        yield* Deferred.await(only.streamClosed).pipe(Effect.timeout("5 seconds"))
      })
  )

  it.scopedLive("no upstream left: 503; an upstream that does not answer: 502", () =>
    Effect.gen(function* () {
      const none = yield* Front.serve({ port: 0, host: "127.0.0.1", upstreams: () => [] })
      expect((yield* Client.requestJson({ port: none, method: "GET", path: "/name" })).status).toBe(503)
      const gone = yield* Effect.scoped(Effect.map(upstream("gone"), (closed) => closed.port))
      const port = yield* Front.serve({ port: 0, host: "127.0.0.1", upstreams: () => [gone] })
      expect((yield* Client.requestJson({ port, method: "GET", path: "/name" })).status).toBe(502)
    })
  )
})
