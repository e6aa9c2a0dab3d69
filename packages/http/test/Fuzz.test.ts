/**
 * Fuzzing the session routes over real HTTP: bad bodies (random bytes and
 * strings, JSON of the wrong shape, huge strings, deep nesting) under any
 * content type, bad session ids, bad `Last-Event-ID`s and bad credentials,
 * sent to every route. Every answer is a JSON refusal with a 4xx status and a
 * `_tag` (never a 5xx, never a hang), nothing starts or commits, and the
 * server serves a normal request afterwards.
 */
import * as Http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

interface Answer {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

/** One request on its own socket; rejects after 5 seconds without an answer (a hang). */
const send = (
  port: number,
  request: {
    readonly method: string
    readonly path: string
    readonly headers?: Readonly<Record<string, string>>
    readonly body?: Uint8Array | string
  }
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = Http.request({
      host: "127.0.0.1",
      port,
      method: request.method,
      path: request.path,
      agent: false,
      headers: request.headers
    })
    const timer = setTimeout(() => {
      req.destroy()
      reject(new Error(`no answer within 5 s to ${request.method} ${request.path}`))
    }, 5000)
    req.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    req.on("response", (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => {
        clearTimeout(timer)
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers["content-type"] ?? "",
          body: Buffer.concat(chunks).toString("utf8")
        })
      })
    })
    req.end(request.body)
  })

/** A clear refusal: 4xx, JSON, `{ error: { _tag, message } }`. */
const expectRefusal = (answer: Answer, what: string) => {
  expect(answer.status, `${what}: ${answer.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
  expect(answer.status, `${what}: ${answer.body.slice(0, 200)}`).toBeLessThan(500)
  expect(answer.contentType, what).toMatch(/application\/json/)
  const json = JSON.parse(answer.body)
  expect(typeof json.error?._tag, what).toBe("string")
  expect(typeof json.error?.message, what).toBe("string")
}

const contentTypes = fc.constantFrom(
  undefined,
  "application/json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "application/octet-stream",
  "application/json; charset=latin1",
  "text/event-stream"
)

const isValidMessageBody = (text: string) => {
  try {
    const json = JSON.parse(text)
    return (
      typeof json === "object" &&
      json !== null &&
      !Array.isArray(json) &&
      typeof json.message === "string" &&
      json.message.length >= 1 &&
      json.message.length <= 8000 &&
      (json.disconnect === undefined || json.disconnect === "cancel" || json.disconnect === "detach")
    )
  } catch {
    return false
  }
}

const deep = (depth: number, open: string, close: string, inner: string) =>
  open.repeat(depth) + inner + close.repeat(depth)

/**
 * Deepest nesting the property sends (deeper bodies are covered by their own test below); unclosed nesting (a
 * parse error) goes to 30000.
 */
const maxSafeDepth = 1000

/** Bodies that are not a valid `{ message, disconnect? }`. */
const badBody: fc.Arbitrary<Uint8Array | string> = fc
  .oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.string({ maxLength: 200 }),
    fc.fullUnicodeString({ maxLength: 100 }),
    fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value)),
    fc
      .record(
        { message: fc.jsonValue({ maxDepth: 2 }), disconnect: fc.jsonValue({ maxDepth: 1 }) },
        { requiredKeys: [] }
      )
      .map((v) => JSON.stringify(v)),
    fc
      .record({ message: fc.string({ maxLength: 20 }), disconnect: fc.string({ maxLength: 10 }) })
      .map((v) => JSON.stringify(v)),
    fc.constant(JSON.stringify({ message: "" })),
    fc.integer({ min: 8001, max: 20000 }).map((n) => JSON.stringify({ message: "x".repeat(n) })),
    fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((n) => JSON.stringify({ message: "y".repeat(n) })),
    fc
      .integer({ min: 100, max: maxSafeDepth })
      .map((n) => JSON.stringify({ message: JSON.parse(deep(n, "[", "]", "")) })),
    fc.integer({ min: 100, max: maxSafeDepth }).map((n) => `{"message":${deep(n, '{"a":', "}", "1")}}`),
    fc.integer({ min: 100, max: maxSafeDepth }).map((n) => deep(n, "[", "]", "")),
    fc.integer({ min: 10, max: 30000 }).map((n) => deep(n, "[", "", "")) // unclosed
  )
  .filter((body) => typeof body !== "string" || !isValidMessageBody(body))

/** Session ids the routes refuse: empty after trimming, too long, or with other characters. */
const badSessionId = fc.oneof(
  fc.string({ minLength: 1, maxLength: 20 }).filter((id) => !/^[A-Za-z0-9_-]{1,100}$/.test(id)),
  fc.fullUnicodeString({ minLength: 1, maxLength: 10 }).filter((id) => !/^[A-Za-z0-9_-]{1,100}$/.test(id)),
  fc.constantFrom("a b", "a.b", "a%b", "ä", "a\u0000b")
)

/** Header-safe text (visible ASCII and spaces) that is not an event id. */
const badEventId = fc
  .oneof(
    fc.stringOf(
      fc.char().filter((c) => c >= " " && c <= "~"),
      { minLength: 1, maxLength: 30 }
    ),
    fc.constantFrom("-1", "1.5", "1e3", "0x10", "9999999999999999", "NaN", "Infinity", "12abc", "1 2")
  )
  .filter((value) => value.trim() !== "" && !/^\d{1,15}$/.test(value.trim()))

const routes = ["messages", "cancel", "status", "events"] as const
const routeRequest = (route: (typeof routes)[number], id: string) => {
  switch (route) {
    case "messages":
      return { method: "POST", path: `/api/sessions/${id}/messages` }
    case "cancel":
      return { method: "POST", path: `/api/sessions/${id}/cancel` }
    case "status":
      return { method: "GET", path: `/api/sessions/${id}` }
    case "events":
      return { method: "GET", path: `/api/sessions/${id}/events` }
  }
}

describe("session routes under fuzzed requests", () => {
  it.scopedLive(
    "bad bodies, ids, Last-Event-IDs and credentials on every route get clear 4xx JSON and change nothing",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "1 millis") })
        const port = harness.port
        // One session that exists, so resuming it with a bad Last-Event-ID reaches the header check.
        const setup = yield* Client.openEventStream({
          port,
          method: "POST",
          path: "/api/sessions/known/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message: "buy" })
        })
        yield* setup.ended.pipe(Effect.timeout("10 seconds"))
        const committedBefore = yield* harness.committed
        const requestsBefore = (yield* harness.model.requests).length
        const check = (property: fc.IAsyncProperty<any>, numRuns: number) =>
          Effect.promise(() => fc.assert(property, { numRuns, seed: 4242 }))

        yield* check(
          fc.asyncProperty(badBody, contentTypes, fc.constantFrom("fresh", "known"), async (body, type, session) => {
            const answer = await send(port, {
              method: "POST",
              path: `/api/sessions/${session}/messages`,
              headers: { ...Harness.alice, ...(type === undefined ? {} : { "content-type": type }) },
              body
            })
            expectRefusal(answer, `body ${String(body).slice(0, 80)}`)
          }),
          120
        )

        yield* check(
          fc.asyncProperty(badSessionId, fc.constantFrom(...routes), async (id, route) => {
            const request = routeRequest(route, encodeURIComponent(id))
            const answer = await send(port, {
              ...request,
              headers: { ...Harness.alice, "content-type": "application/json" },
              ...(request.method === "POST" ? { body: JSON.stringify({ message: "hi" }) } : {})
            })
            expectRefusal(answer, `${route} of session ${JSON.stringify(id)}`)
            expect(answer.status).toBe(400)
          }),
          100
        )

        yield* check(
          fc.asyncProperty(badEventId, fc.boolean(), async (value, asQuery) => {
            const answer = await send(port, {
              method: "GET",
              path: asQuery
                ? `/api/sessions/known/events?after=${encodeURIComponent(value)}`
                : "/api/sessions/known/events",
              headers: { ...Harness.alice, ...(asQuery ? {} : { "last-event-id": value }) }
            })
            expectRefusal(answer, `Last-Event-ID ${JSON.stringify(value)}`)
            expect(answer.status).toBe(400)
          }),
          80
        )

        yield* check(
          fc.asyncProperty(
            fc.option(
              fc.stringOf(
                fc.char().filter((c) => c >= " " && c <= "~"),
                { maxLength: 60 }
              ),
              { nil: undefined }
            ),
            fc.constantFrom(...routes),
            fc.constantFrom("fresh", "known"),
            async (authorization, route, session) => {
              const request = routeRequest(route, session)
              const answer = await send(port, {
                ...request,
                headers: authorization === undefined ? {} : { authorization },
                ...(request.method === "POST" ? { body: JSON.stringify({ message: "hi" }) } : {})
              })
              expectRefusal(answer, `authorization ${JSON.stringify(authorization)}`)
              expect(answer.status).toBe(401)
            }
          ),
          80
        )

        // Nothing started, nothing committed, no session claimed.
        expect(yield* harness.registry.running).toEqual([])
        expect((yield* harness.model.requests).length).toBe(requestsBefore)
        expect(yield* harness.committed).toEqual(committedBefore)
        expect((yield* harness.store.ownedBy("alice" as never)).map((s) => s.id)).toEqual(["known"])

        // And the server still serves a normal request.
        const normal = yield* Client.openEventStream({
          port,
          method: "POST",
          path: "/api/sessions/after-fuzz/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message: "buy" })
        })
        const events = yield* normal.ended.pipe(Effect.timeout("10 seconds"))
        expect(normal.status).toBe(200)
        expect(events.at(-1)?.event).toBe("RunCompleted")
      })
  )

  // A JSON body nested thousands deep (30000 levels, 60 KB, under the 64 KiB limit) once overflowed the stack in
  // the Schema error formatter (a 500): bodies nested deeper than 64 levels are now refused before decoding.
  it.scopedLive("a deeply nested JSON body gets a clear 400 and changes nothing", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "1 millis") })
      const body = deep(30000, "[", "]", "")
      const answer = yield* Effect.promise(() =>
        send(harness.port, {
          method: "POST",
          path: "/api/sessions/deep/messages",
          headers: { ...Harness.alice, "content-type": "application/json" },
          body
        })
      )
      expectRefusal(answer, "a body nested 30000 deep")
      expect(answer.status).toBe(400)
      expect(JSON.parse(answer.body).error.message).toMatch(/nested deeper than 64 levels/)
    })
  )

  // The router (find-my-way, `maxParamLength` 100) matches no longer path parameter, so session ids are at most
  // 100 characters: the longest one still reaches the routes and gets JSON answers.
  it.scopedLive("a session id of 100 characters reaches the routes", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "1 millis") })
      const answer = yield* Effect.promise(() =>
        send(harness.port, {
          method: "GET",
          path: `/api/sessions/${"a".repeat(100)}`,
          headers: Harness.alice
        })
      )
      // A known-good route answers JSON: 404 SessionNotFound for a session nobody started.
      expectRefusal(answer, "status of a 100-character session id")
      expect(JSON.parse(answer.body).error._tag).toBe("SessionNotFound")
    })
  )
})
