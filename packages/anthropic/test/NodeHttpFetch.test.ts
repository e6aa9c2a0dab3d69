import Anthropic from "@anthropic-ai/sdk"
import { describe, expect, it } from "@effect/vitest"
import { LanguageModel } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Fiber, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { nodeHttpFetch } from "../src/internal/nodeHttpFetch.js"
import { AnthropicModel } from "../src/index.js"
import { apiKey, collectTurn, modelFor, turnError, userTurn } from "./helpers.js"

const MiB = 1024 * 1024

/** What `promise` rejects with (`undefined` when it resolves). */
const rejectionOf = (promise: Promise<unknown>) =>
  Effect.promise(() =>
    promise.then(
      () => undefined,
      (e: unknown) => e
    )
  )

/** A promise and its resolve function. */
const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

/** The model on `baseURL`, without retries. */
const modelOn = (baseURL: string) => AnthropicModel.make({ apiKey, baseURL, maxRetries: 0 })

/** A plain server for one test, closed (every socket with it) when the scope closes. */
const serve = (
  handler: http.RequestListener,
  make: (handler: http.RequestListener) => http.Server = (h) => http.createServer(h)
) =>
  Effect.acquireRelease(
    Effect.async<http.Server>((resume) => {
      const server = make(handler)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => (server.address() as AddressInfo).port))

/** Replaces `globalThis.fetch` for the scope with one that counts its calls and fails them. */
const forbidGlobalFetch = Effect.acquireRelease(
  Effect.sync(() => {
    const original = globalThis.fetch
    const calls = { count: 0 }
    globalThis.fetch = () => {
      calls.count++
      return Promise.reject(new TypeError("globalThis.fetch was called"))
    }
    return { original, calls }
  }),
  ({ original }) => Effect.sync(() => (globalThis.fetch = original))
).pipe(Effect.map(({ calls }) => calls))

/** Reads a body to its end as text. */
const readAll = (body: ReadableStream<Uint8Array>) =>
  Effect.promise(async () => {
    const decoder = new TextDecoder()
    let text = ""
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>)
      text += decoder.decode(chunk, { stream: true })
    return text
  })

/** A self-signed certificate for 127.0.0.1, made by `openssl` for this run. */
const selfSigned = (): { key: string; cert: string } => {
  const dir = mkdtempSync(join(tmpdir(), "tether-tls-"))
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem")
      ],
      { stdio: "ignore" }
    )
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe("the default transport on Node: fetch on node:http", () => {
  it.scopedLive("a model without a fetch option streams a whole answer without calling globalThis.fetch", () =>
    Effect.gen(function* () {
      const calls = yield* forbidGlobalFetch
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text(["Hello ", "from ", "node:http"])])
      const model = yield* modelFor(fake)
      const events = yield* collectTurn(model)
      const text = events.flatMap((event) => (event._tag === "TextDelta" ? [event.text] : [])).join("")
      expect(text).toBe("Hello from node:http")
      expect(events.at(-1)).toMatchObject({ _tag: "Stop", reason: "end_turn" })
      expect(calls.count).toBe(0)
      const [record] = yield* fake.requests
      expect(record?.headers["host"]).toBe(new URL(fake.url).host)
      expect(record?.headers["content-length"]).toBe(String(Buffer.byteLength(record!.rawBody)))
      // The SDK's own headers go out as it set them.
      expect(record?.headers["authorization"]).toBe(`Bearer ${apiKey}`)
      expect(record?.headers["anthropic-version"]).toBeDefined()
    })
  )

  it.scopedLive("a fetch given in the options wins over the default", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("Hi")])
      let calls = 0
      const model = yield* modelFor(fake, {
        fetch: (input, init) => {
          calls++
          return nodeHttpFetch(input, init)
        }
      })
      yield* collectTurn(model)
      expect(calls).toBe(1)
    })
  )

  it.scopedLive("cancelling a turn mid-stream closes the model's socket", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text(["one ", "two ", "three"], { interval: 1000 })])
      const model = yield* modelFor(fake)
      const fiber = yield* LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
      yield* fake.awaitTokens(0, 1)
      yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(fiber)
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
      expect(record.closedAt).toBeDefined()
      expect(record.isFinished).toBe(false)
      yield* fake.awaitOpenConnections(0).pipe(Effect.timeout("2 seconds"))
    })
  )

  it.scopedLive("an unreachable host is a ConnectionError, and an error status the same typed error as before", () =>
    Effect.gen(function* () {
      const closed = yield* Effect.promise(() => FakeAnthropic.start([]))
      yield* Effect.promise(() => closed.close())
      const error = yield* turnError(yield* modelOn(closed.url))
      expect(error._tag).toBe("ConnectionError")
      expect(error.message).toMatch(/ECONNREFUSED/)

      const fake = yield* FakeAnthropic.make([FakeAnthropic.httpError(404, { message: "no such model" })])
      expect(yield* turnError(yield* modelFor(fake, { maxRetries: 0 }))).toMatchObject({
        _tag: "NotFoundError",
        status: 404,
        message: "no such model"
      })
    })
  )
})

describe("nodeHttpFetch", () => {
  it.scopedLive("status, headers (repeated ones too) and the body come through; a 204 has no body", () =>
    Effect.gen(function* () {
      const port = yield* serve((request, response) => {
        if (request.url === "/empty") {
          response.writeHead(204).end()
          return
        }
        let body = ""
        request.on("data", (chunk) => (body += chunk))
        request.on("end", () => {
          response.writeHead(201, [
            ["x-echo-method", request.method ?? ""],
            ["set-cookie", "a=1"],
            ["set-cookie", "b=2"]
          ])
          response.write("first ")
          setTimeout(() => response.end(`then ${body}`), 20)
        })
      })
      const response = yield* Effect.promise(() =>
        nodeHttpFetch(`http://127.0.0.1:${port}/`, {
          method: "POST",
          body: new TextEncoder().encode("bytes"),
          headers: { "content-type": "text/plain" }
        })
      )
      expect(response.status).toBe(201)
      expect(response.ok).toBe(true)
      expect(response.headers.get("x-echo-method")).toBe("POST")
      expect(response.headers.getSetCookie()).toEqual(["a=1", "b=2"])
      expect(yield* readAll(response.body!)).toBe("first then bytes")

      const empty = yield* Effect.promise(() => nodeHttpFetch(new URL(`http://127.0.0.1:${port}/empty`)))
      expect(empty.status).toBe(204)
      expect(empty.body).toBeNull()
    })
  )

  it.scopedLive("aborting mid-body fails the pending read with an AbortError and closes the socket", () =>
    Effect.gen(function* () {
      const closed = deferred()
      const port = yield* serve((_request, response) => {
        response.writeHead(200).write("first")
        response.on("close", () => closed.resolve())
      })
      const controller = new AbortController()
      const response = yield* Effect.promise(() =>
        nodeHttpFetch(`http://127.0.0.1:${port}/`, { signal: controller.signal })
      )
      const reader = response.body!.getReader()
      expect(new TextDecoder().decode((yield* Effect.promise(() => reader.read())).value)).toBe("first")
      const pending = reader.read()
      controller.abort()
      const error = yield* rejectionOf(pending)
      expect(error).toMatchObject({ name: "AbortError" })
      yield* Effect.promise(() => closed.promise).pipe(Effect.timeout("2 seconds"))
    })
  )

  it.scopedLive("aborting before the headers rejects with the signal's reason; an aborted signal sends nothing", () =>
    Effect.gen(function* () {
      let requests = 0
      const port = yield* serve(() => void requests++)
      const controller = new AbortController()
      const pending = nodeHttpFetch(`http://127.0.0.1:${port}/`, { signal: controller.signal })
      yield* Effect.sleep("50 millis")
      controller.abort()
      const error = yield* rejectionOf(pending)
      expect(error).toMatchObject({ name: "AbortError" })
      const again = yield* rejectionOf(nodeHttpFetch(`http://127.0.0.1:${port}/`, { signal: controller.signal }))
      expect(again).toMatchObject({ name: "AbortError" })
      expect(requests).toBe(1)
    })
  )

  it.scopedLive("through the SDK, an abort is its abort error and a refused connection an APIConnectionError", () =>
    Effect.gen(function* () {
      const port = yield* serve(() => {})
      const client = new Anthropic({ apiKey, baseURL: `http://127.0.0.1:${port}`, maxRetries: 0, fetch: nodeHttpFetch })
      const controller = new AbortController()
      const pending = client.messages.create(
        { model: "claude-test", max_tokens: 10, messages: [{ role: "user", content: "Hi" }] },
        { signal: controller.signal }
      )
      yield* Effect.sleep("50 millis")
      controller.abort()
      expect(yield* rejectionOf(pending)).toBeInstanceOf(Anthropic.APIUserAbortError)

      const closed = yield* Effect.promise(() => FakeAnthropic.start([]))
      yield* Effect.promise(() => closed.close())
      const refused = new Anthropic({ apiKey, baseURL: closed.url, maxRetries: 0, fetch: nodeHttpFetch })
      const error = yield* rejectionOf(
        refused.messages.create({ model: "claude-test", max_tokens: 10, messages: [{ role: "user", content: "Hi" }] })
      )
      expect(error).toBeInstanceOf(Anthropic.APIConnectionError)
      expect((error as Error).cause).toMatchObject({ code: "ECONNREFUSED" })
    })
  )

  it.scopedLive("a body nobody reads pauses the socket: the server cannot write it all (backpressure)", () =>
    Effect.gen(function* () {
      const total = 64 * MiB
      const progress = { written: 0, isBlocked: deferred() }
      const chunk = Buffer.alloc(64 * 1024, "x")
      const port = yield* serve((_request, response) => {
        response.writeHead(200, { "content-length": String(total) })
        const write = () => {
          while (progress.written < total) {
            progress.written += chunk.length
            if (!response.write(chunk)) {
              // Blocked until the client reads: note it if no drain comes soon.
              const blocked = setTimeout(() => progress.isBlocked.resolve(), 300)
              response.once("drain", () => {
                clearTimeout(blocked)
                write()
              })
              return
            }
          }
          response.end()
        }
        write()
      })
      const response = yield* Effect.promise(() => nodeHttpFetch(`http://127.0.0.1:${port}/`))
      const reader = response.body!.getReader()
      yield* Effect.promise(() => reader.read())
      yield* Effect.promise(() => progress.isBlocked.promise).pipe(Effect.timeout("10 seconds"))
      // What the socket buffers and one queued chunk hold: nowhere near the whole body.
      expect(progress.written).toBeLessThan(16 * MiB)
      yield* Effect.promise(() => reader.cancel())
    })
  )

  it.scopedLive.skipIf(!hasOpenssl)(
    "https: a self-signed certificate is refused (ConnectionError); trusted, the answer streams",
    () =>
      Effect.gen(function* () {
        const tls = selfSigned()
        const port = yield* serve(
          (_request, response) => {
            response.writeHead(200, { "content-type": "text/plain" })
            response.end("over TLS")
          },
          (handler) => https.createServer(tls, handler)
        )
        const url = `https://127.0.0.1:${port}`
        const refused = yield* rejectionOf(nodeHttpFetch(url))
        expect(refused).toMatchObject({ code: "DEPTH_ZERO_SELF_SIGNED_CERT" })
        expect((yield* turnError(yield* modelOn(url)))._tag).toBe("ConnectionError")

        // Trusting every certificate for a moment (Node reads the variable at each connection).
        const previous = process.env["NODE_TLS_REJECT_UNAUTHORIZED"]
        process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0"
        const response = yield* Effect.promise(() => nodeHttpFetch(url)).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              if (previous === undefined) delete process.env["NODE_TLS_REJECT_UNAUTHORIZED"]
              else process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = previous
            })
          )
        )
        expect(yield* readAll(response.body!)).toBe("over TLS")
      })
  )
})
