/**
 * Slow clients against `NodeServer.make`, on real sockets: a client that sends part of its headers and then nothing,
 * and one whose body trickles in a byte a second, are answered 408 and cut off at their deadline (Node's defaults:
 * 60 s and 300 s, checked every 30 s), while the server goes on answering others.
 */
import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { NodeServer } from "@tether/node"
import * as Raw from "../../http/test/support/rawClient.js"

/**
 * A server of `NodeServer.make(options)` on a free port that answers every request it gets with 200; `reached` lists
 * the paths of the requests its listener saw.
 */
const listening = (options: NodeServer.Options) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: http.Server; readonly port: number; readonly reached: Array<string> }>((resume) => {
      const server = NodeServer.make(options)
      const reached: Array<string> = []
      server.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => {
        reached.push(request.url ?? "")
        request.resume()
        request.on("end", () => response.end("ok"))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, port, reached }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

const get = (port: number) =>
  Effect.async<number>((resume) => {
    const request = http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (response) => {
      response.resume()
      response.on("end", () => resume(Effect.succeed(response.statusCode ?? 0)))
    })
    request.on("error", (error) => resume(Effect.die(error)))
  })

describe("NodeServer.make", () => {
  it("sets the deadlines it is given, and its defaults otherwise", () => {
    const server = NodeServer.make({ headersTimeout: "2 seconds", requestTimeout: "4 seconds" })
    expect([server.headersTimeout, server.requestTimeout, server.keepAliveTimeout]).toEqual([2000, 4000, 5000])
    const defaults = NodeServer.make()
    expect([defaults.headersTimeout, defaults.requestTimeout]).toEqual([10_000, 30_000])
    // The headers deadline is never longer than the whole request's.
    expect(NodeServer.make({ headersTimeout: "9 seconds", requestTimeout: "3 seconds" }).headersTimeout).toBe(3000)
  })

  it.scopedLive("a client that sends part of its headers and then nothing is cut off at the headers deadline", () =>
    Effect.gen(function* () {
      const { port } = yield* listening({
        headersTimeout: "1 second",
        requestTimeout: "10 seconds",
        checkInterval: "200 millis"
      })
      const silent = yield* Effect.all(Array.from({ length: 5 }, () => Raw.connect(port)))
      yield* Effect.forEach(silent, (client) => client.write("POST /api HTTP/1.1\r\nHost: x\r\n"), { discard: true })
      // The server still answers everyone else.
      expect(yield* get(port)).toBe(200)
      const ends = yield* Effect.forEach(silent, (client) => client.closed).pipe(Effect.timeout("8 seconds"))
      for (const end of ends) {
        expect(end.received).toMatch(/^HTTP\/1\.1 408 /)
        expect(end.afterMillis).toBeGreaterThanOrEqual(900)
      }
      yield* Effect.logInfo(`silent clients cut off after ${ends.map((e) => e.afterMillis.toFixed(0)).join(", ")} ms`)
    })
  )

  it.scopedLive("a client whose body trickles a byte a second is cut off at the request deadline", () =>
    Effect.gen(function* () {
      const { port } = yield* listening({
        headersTimeout: "1 second",
        requestTimeout: "2 seconds",
        checkInterval: "200 millis"
      })
      const slow = yield* Effect.all(Array.from({ length: 10 }, () => Raw.connect(port)))
      yield* Effect.forEach(
        slow,
        (client) =>
          client.write(
            "POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
          ),
        { discard: true }
      )
      yield* Effect.forEach(slow, (client) => Effect.forkScoped(client.trickle("x".repeat(100), "1 second")), {
        discard: true
      })
      expect(yield* get(port)).toBe(200)
      const ends = yield* Effect.forEach(slow, (client) => client.closed).pipe(Effect.timeout("10 seconds"))
      for (const end of ends) expect(end.afterMillis).toBeGreaterThanOrEqual(1900)
      yield* Effect.logInfo(
        `trickling clients cut off after ${ends.map((e) => e.afterMillis.toFixed(0)).join(", ")} ms`
      )
    })
  )

  it.scopedLive("refuse answers a request before any listener sees it, without waiting for its body", () =>
    Effect.gen(function* () {
      const { port, reached } = yield* listening({
        refuse: (request) =>
          request.method === "POST" && request.url === "/full"
            ? {
                status: 503,
                headers: { "retry-after": "2", "content-type": "application/json" },
                body: '{"full":true}'
              }
            : undefined
      })
      // Headers and a body announced but never sent: the answer comes anyway, and the connection closes after it.
      const client = yield* Raw.connect(port)
      yield* client.write(
        "POST /full HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
      )
      const end = yield* client.closed.pipe(Effect.timeout("5 seconds"))
      expect(end.received).toMatch(/^HTTP\/1\.1 503 /)
      expect(end.received).toMatch(/\r\nretry-after: 2\r\n/i)
      expect(end.received).toMatch(/\r\nconnection: close\r\n/i)
      expect(end.received.endsWith('{"full":true}')).toBe(true)
      // Everything else goes through to the listener, which never saw the refused request.
      expect(yield* get(port)).toBe(200)
      expect(reached).toEqual(["/"])
    })
  )
})
