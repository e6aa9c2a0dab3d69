import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

const streaming = (stream: Client.EventStream) =>
  stream.waitFor((events) => events.some((e) => e.event === "TextDelta")).pipe(Effect.timeout("10 seconds"))

describe("Stop", () => {
  it.scopedLive("Stop from a second request cancels the right run: two sessions run, only one stops", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(200, "50 millis") })
      const a = yield* Harness.postMessage(harness.port, Harness.alice, "s-a")
      const b = yield* Harness.postMessage(harness.port, Harness.alice, "s-b")
      yield* streaming(a)
      yield* streaming(b)

      const stop = yield* Client.requestJson({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-a/cancel",
        headers: Harness.alice
      })
      expect(stop.status).toBe(200)
      expect(stop.json).toMatchObject({
        sessionId: "s-a",
        wasRunning: true,
        outcome: {
          _tag: "Cancelled",
          reason: { _tag: "UserAbort" },
          reasonText: "the user pressed Stop",
          writesRolledBack: 1
        }
      })
      expect(stop.json.outcome.tokensUsed).toBeGreaterThan(0)
      const tally = stop.json.outcome.tally
      expect(tally.used).toBe(stop.json.outcome.tokensUsed)
      expect(tally.reportedInput + tally.reportedOutput + tally.estimated).toBe(tally.used)

      const events = yield* a.ended.pipe(Effect.timeout("10 seconds"))
      expect(events.at(-1)).toMatchObject({
        event: "RunCancelled",
        data: { reason: { _tag: "UserAbort" }, writesRolledBack: 1 }
      })
      expect(yield* harness.registry.running).toEqual(["s-b"])
      expect(yield* harness.model.openStreams).toBe(1)

      // A second Stop answers what the first did.
      const again = yield* Client.requestJson({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-a/cancel",
        headers: Harness.alice
      })
      expect(again.json).toMatchObject({
        wasRunning: false,
        outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" } }
      })
      yield* b.destroy
    })
  )

  it.scopedLive("another caller can neither stop, read, stream nor continue a session: 403, nothing changes", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(200, "50 millis") })
      const a = yield* Harness.postMessage(harness.port, Harness.alice, "s-a")
      yield* streaming(a)
      const runId = a.headers["x-tether-run-id"]
      const request = (method: "GET" | "POST", path: string, body?: string) =>
        Client.requestJson({ port: harness.port, method, path, headers: Harness.bob, body })
      const answers = [
        yield* request("POST", "/api/sessions/s-a/cancel"),
        yield* request("GET", "/api/sessions/s-a"),
        yield* request("GET", "/api/sessions/s-a/events"),
        yield* request("POST", "/api/sessions/s-a/messages", JSON.stringify({ message: "mine now" }))
      ]
      for (const answer of answers) {
        expect(answer.status).toBe(403)
        expect(answer.json.error).toMatchObject({ _tag: "Forbidden", sessionId: "s-a" })
      }
      expect(yield* harness.registry.running).toEqual(["s-a"])
      const run = yield* harness.registry.get("s-a").pipe(Effect.flatten)
      expect(run.id).toBe(runId)
      expect((yield* harness.store.get("s-a")).pipe((s) => s._tag === "Some" && s.value.owner)).toBe("alice")
      yield* a.destroy
    })
  )

  it.scopedLive("missing or forged credentials get 401 and start nothing", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "5 millis") })
      const body = JSON.stringify({ message: "hi" })
      const attempts = [
        {},
        { authorization: "Bearer token-mallory" },
        { authorization: "Basic YWxpY2U6c2VjcmV0" },
        { authorization: "Bearer" }
      ]
      for (const headers of attempts) {
        for (const [method, path] of [
          ["POST", "/api/sessions/s-1/messages"],
          ["POST", "/api/sessions/s-1/cancel"],
          ["GET", "/api/sessions/s-1"],
          ["GET", "/api/sessions/s-1/events"]
        ] as const) {
          const answer = yield* Client.requestJson({
            port: harness.port,
            method,
            path,
            headers,
            body: method === "POST" ? body : undefined
          })
          expect(answer.status).toBe(401)
          expect(answer.json.error._tag).toBe("Unauthorized")
          expect(answer.headers["www-authenticate"]).toMatch(/^Bearer/)
        }
      }
      expect(yield* harness.registry.running).toEqual([])
      expect((yield* harness.store.get("s-1"))._tag).toBe("None")
      expect(yield* harness.model.requests).toHaveLength(0)
    })
  )
})
