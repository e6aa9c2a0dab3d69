import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { SessionStore } from "@tether/core"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

/** POSTs `body` in 4 KiB chunks with no content-length (chunked), as a streamed upload does. */
const postChunked = (port: number, path: string, body: string) =>
  Effect.async<{ readonly status: number; readonly json: any } | { readonly error: string }>((resume) => {
    let isDone = false
    const done = (answer: { readonly status: number; readonly json: any } | { readonly error: string }) => {
      if (isDone) return
      isDone = true
      resume(Effect.succeed(answer))
    }
    const request = http.request({
      port,
      method: "POST",
      path,
      headers: { ...Harness.alice, "content-type": "application/json" }
    })
    request.on("response", (response) => {
      let text = ""
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => {
        try {
          done({ status: response.statusCode ?? 0, json: JSON.parse(text) })
        } catch {
          done({ error: `not JSON: ${text.slice(0, 100)}` })
        }
      })
      response.on("error", (error) => done({ error: error.message }))
      response.on("close", () => done({ error: "closed before the end of the response" }))
    })
    request.on("error", (error) => done({ error: error.message }))
    // Past the cap the server closes the connection while this client still writes: the write fails on the socket
    // after the answer was read, which is what the test expects, not an error of the test.
    request.on("socket", (socket) => socket.on("error", () => {}))
    for (let i = 0; i < body.length; i += 4096) request.write(body.slice(i, i + 4096))
    request.end()
  })

/** The in-memory store, failing every call (`all`) or only saves (`save`) while `mode` says so. */
const flakyStore = (mode: { current: "none" | "all" | "save" }) =>
  Layer.scoped(
    SessionStore.SessionStore,
    Effect.map(SessionStore.makeMemory(), (store): SessionStore.Service => {
      const failing = <A>(effect: Effect.Effect<A, SessionStore.SessionStoreError>, isSave = false) =>
        Effect.suspend(() =>
          mode.current === "all" || (isSave && mode.current === "save")
            ? new SessionStore.SessionStoreError({ message: "the database is down" })
            : effect
        )
      return {
        get: (id) => failing(store.get(id)),
        save: (session) => failing(store.save(session), true),
        ownedBy: (owner) => failing(store.ownedBy(owner)),
        follow: store.follow
      }
    })
  )

describe("bad input", () => {
  it.scopedLive("a chunked body gets the same answers: 400 for bad JSON, 413 (not a reset) past the limit", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "5 millis") })
      const path = "/api/sessions/s-1/messages"
      const malformed = yield* postChunked(harness.port, path, '{"message": "hi"')
      expect(malformed).toMatchObject({ status: 400, json: { error: { _tag: "BadRequest" } } })
      for (const size of [70 * 1024, 300 * 1024]) {
        const oversize = yield* postChunked(harness.port, path, JSON.stringify({ message: "x".repeat(size) }))
        expect(oversize).toMatchObject({
          status: 413,
          json: { error: { _tag: "PayloadTooLarge", limitBytes: 64 * 1024 } }
        })
      }
      // Far past the limit the rest is not read: the connection closes. The server goes on all the same.
      yield* postChunked(harness.port, path, JSON.stringify({ message: "x".repeat(4 * 1024 * 1024) }))
      const after = yield* postChunked(harness.port, path, '{"message": ')
      expect(after).toMatchObject({ status: 400 })
      expect(yield* harness.registry.running).toEqual([])
      expect(yield* harness.model.requests).toHaveLength(0)
    })
  )

  it.scopedLive(
    "malformed JSON, oversize bodies, bad fields, bad ids and unknown sessions get clear JSON errors and change nothing",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "5 millis") })
        const post = (path: string, body: string) =>
          Client.requestJson({ port: harness.port, method: "POST", path, headers: Harness.alice, body })
        const get = (path: string) =>
          Client.requestJson({ port: harness.port, method: "GET", path, headers: Harness.alice })

        const malformed = yield* post("/api/sessions/s-1/messages", '{"message": "hi"')
        expect(malformed.status).toBe(400)
        expect(malformed.json.error).toMatchObject({ _tag: "BadRequest" })
        expect(malformed.json.error.message).toMatch(/not valid JSON/)

        const empty = yield* post("/api/sessions/s-1/messages", "")
        expect(empty.status).toBe(400)

        const oversize = yield* post("/api/sessions/s-1/messages", JSON.stringify({ message: "x".repeat(70 * 1024) }))
        expect(oversize.status).toBe(413)
        expect(oversize.json.error).toMatchObject({ _tag: "PayloadTooLarge", limitBytes: 64 * 1024 })

        const tooLong = yield* post("/api/sessions/s-1/messages", JSON.stringify({ message: "x".repeat(8001) }))
        expect(tooLong.status).toBe(422)
        expect(tooLong.json.error).toMatchObject({
          _tag: "InvalidBody",
          message: "message: the message must be at most 8000 characters",
          issues: [{ path: ["message"], message: "the message must be at most 8000 characters" }]
        })

        const missing = yield* post("/api/sessions/s-1/messages", JSON.stringify({ text: "hi" }))
        expect(missing.status).toBe(422)
        expect(missing.json.error.issues[0].path).toEqual(["message"])

        const badPolicy = yield* post(
          "/api/sessions/s-1/messages",
          JSON.stringify({ message: "hi", disconnect: "maybe" })
        )
        expect(badPolicy.status).toBe(422)
        expect(badPolicy.json.error.issues[0].path).toEqual(["disconnect"])

        const notAnObject = yield* post("/api/sessions/s-1/messages", "[1, 2]")
        expect(notAnObject.status).toBe(422)

        const badId = yield* post("/api/sessions/not%20an%20id/messages", JSON.stringify({ message: "hi" }))
        expect(badId.status).toBe(400)
        expect(badId.json.error._tag).toBe("BadRequest")

        for (const answer of [
          yield* post("/api/sessions/nope/cancel", ""),
          yield* get("/api/sessions/nope"),
          yield* get("/api/sessions/nope/events")
        ]) {
          expect(answer.status).toBe(404)
          expect(answer.json.error).toMatchObject({ _tag: "SessionNotFound", sessionId: "nope" })
        }

        expect(yield* harness.registry.running).toEqual([])
        expect(Option.isNone(yield* harness.registry.get("s-1"))).toBe(true)
        expect(Option.isNone(yield* harness.store.get("s-1"))).toBe(true)
        expect(yield* harness.model.requests).toHaveLength(0)
      })
  )

  it.scopedLive(
    "a body not declared as JSON gets 415 and starts nothing; JSON types with parameters or +json pass",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(1, "1 millis") })
        const body = JSON.stringify({ message: "buy" })
        const post = (sessionId: string, contentType: string | undefined) =>
          Effect.async<{ readonly status: number; readonly json: any }>((resume) => {
            const request = http.request({
              port: harness.port,
              method: "POST",
              path: `/api/sessions/${sessionId}/messages`,
              agent: false,
              headers: { ...Harness.alice, ...(contentType === undefined ? {} : { "content-type": contentType }) }
            })
            request.on("response", (response) => {
              let text = ""
              response.on("data", (chunk) => (text += chunk))
              response.on("end", () =>
                resume(
                  Effect.succeed({
                    status: response.statusCode ?? 0,
                    json: response.statusCode === 200 ? text : JSON.parse(text)
                  })
                )
              )
            })
            request.on("error", (error) => resume(Effect.die(error)))
            request.end(body)
          })

        // What a cross-site form or a no-preflight fetch can send, and no type at all.
        for (const type of [
          "text/plain",
          "text/plain;charset=UTF-8",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/jsonp",
          undefined
        ]) {
          const refused = yield* post("s-form", type)
          expect(refused.status, String(type)).toBe(415)
          expect(refused.json.error).toMatchObject({ _tag: "UnsupportedMediaType" })
          expect(refused.json.error.message).toMatch(/application\/json/)
        }
        expect(Option.isNone(yield* harness.store.get("s-form"))).toBe(true)
        expect(yield* harness.model.requests).toHaveLength(0)

        for (const [sessionId, type] of [
          ["s-charset", "Application/JSON; charset=utf-8"],
          ["s-suffix", "application/vnd.example+json"]
        ] as const) {
          const accepted = yield* post(sessionId, type)
          expect(accepted.status, type).toBe(200)
          expect(accepted.json).toMatch(/RunCompleted/)
        }
        expect(yield* harness.model.requests).toHaveLength(4)
      })
  )

  it.scopedLive(
    "a failing session store gets 503 StoreUnavailable; a run whose session was not saved is cancelled",
    () =>
      Effect.gen(function* () {
        const mode: { current: "none" | "all" | "save" } = { current: "all" }
        const harness = yield* Harness.start({
          script: Harness.orderThenSlowText(50, "20 millis"),
          sessionStore: flakyStore(mode)
        })
        const post = (sessionId: string) =>
          Client.requestJson({
            port: harness.port,
            method: "POST",
            path: `/api/sessions/${sessionId}/messages`,
            headers: Harness.alice,
            body: JSON.stringify({ message: "buy" })
          })
        const get = (path: string) =>
          Client.requestJson({ port: harness.port, method: "GET", path, headers: Harness.alice })

        for (const answer of [yield* post("s-down"), yield* get("/api/sessions/s-down")]) {
          expect(answer.status).toBe(503)
          expect(answer.json.error).toMatchObject({ _tag: "StoreUnavailable" })
        }
        expect(yield* harness.registry.get("s-down")).toEqual(Option.none())

        // The store fails only the save, after the run has started: the run is cancelled, not left unwatched.
        mode.current = "save"
        const refused = yield* post("s-save")
        expect(refused.status).toBe(503)
        const outcome = yield* Harness.outcomeOf(harness, "s-save")
        expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Interrupted" } })
        expect(yield* harness.registry.running).toEqual([])
        expect((yield* harness.committed).size).toBe(0)

        mode.current = "none"
        const stream = yield* Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/s-up/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message: "buy" })
        })
        expect(stream.status).toBe(200)
      })
  )

  it.scopedLive("too many runs per caller get 429, a message to a busy session 409; nothing changes", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: Harness.orderThenSlowText(200, "50 millis"),
        routes: { limits: { maxRunningPerCaller: 2 } }
      })
      const start = (headers: Record<string, string>, sessionId: string) =>
        Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: `/api/sessions/${sessionId}/messages`,
          headers,
          body: JSON.stringify({ message: "buy" })
        })
      const one = yield* start(Harness.alice, "s-1")
      const two = yield* start(Harness.alice, "s-2")
      expect([one.status, two.status]).toEqual([200, 200])

      const three = yield* start(Harness.alice, "s-3")
      expect(three.status).toBe(429)
      expect(JSON.parse(three.text()).error).toMatchObject({ _tag: "TooManyRuns", limit: 2 })
      expect(Option.isNone(yield* harness.store.get("s-3"))).toBe(true)

      const runBefore = (yield* harness.registry.get("s-1").pipe(Effect.flatten)).id
      const busy = yield* start(Harness.alice, "s-1")
      expect(busy.status).toBe(409)
      expect(JSON.parse(busy.text()).error).toMatchObject({ _tag: "SessionBusy", sessionId: "s-1", runId: runBefore })
      expect((yield* harness.registry.get("s-1").pipe(Effect.flatten)).id).toBe(runBefore)
      expect([...(yield* harness.registry.running)].sort()).toEqual(["s-1", "s-2"])

      // The limit is per caller: bob may start his own.
      const bobs = yield* start(Harness.bob, "s-bob")
      expect(bobs.status).toBe(200)
      yield* Effect.forEach([one, two, bobs], (stream) => stream.destroy)
    })
  )
})
