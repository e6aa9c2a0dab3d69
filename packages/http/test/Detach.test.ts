import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

const expectContiguous = (events: ReadonlyArray<Client.SseEvent>) => {
  expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
  expect(events.at(-1)?.event).toBe("RunCompleted")
}

describe("detach policy", () => {
  it.scopedLive(
    "a detached run goes on after a disconnect; Last-Event-ID re-attach gets exactly the missed events",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(40, "25 millis") })
        const first = yield* Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/s-d/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message: "buy", disconnect: "detach" })
        })
        yield* first
          .waitFor((events) => events.filter((e) => e.event === "TextDelta").length >= 3)
          .pipe(Effect.timeout("10 seconds"))
        yield* first.destroy
        // What the client had read when it dropped: no more bytes are parsed after `destroy`.
        const seen = [...first.events]
        expect(yield* harness.registry.running).toEqual(["s-d"])

        const lastEventId = String(seen.at(-1)!.id)
        const resumed = yield* Client.openEventStream({
          port: harness.port,
          method: "GET",
          path: "/api/sessions/s-d/events",
          headers: { ...Harness.alice, "last-event-id": lastEventId }
        })
        expect(resumed.status).toBe(200)
        const rest = yield* resumed.ended.pipe(Effect.timeout("10 seconds"))
        expect(rest.length).toBeGreaterThan(0)
        expectContiguous([...seen, ...rest])
        expect(yield* Harness.outcomeOf(harness, "s-d")).toMatchObject({ _tag: "Completed", writesCommitted: 1 })
        expect((yield* harness.committed).get("orders")?.size).toBe(1)
      })
  )

  it.scopedLive("?after= re-attaches too, and after the end it replays only what is missing", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(3, "5 millis") })
      const first = yield* Client.openEventStream({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-e/messages",
        headers: Harness.alice,
        body: JSON.stringify({ message: "buy", disconnect: "detach" })
      })
      const all = yield* first.ended.pipe(Effect.timeout("10 seconds"))
      expectContiguous(all)
      const tail = yield* Client.openEventStream({
        port: harness.port,
        method: "GET",
        path: "/api/sessions/s-e/events?after=4",
        headers: Harness.alice
      })
      const replayed = yield* tail.ended.pipe(Effect.timeout("10 seconds"))
      expect(replayed.map((e) => e.id)).toEqual(all.slice(4).map((e) => e.id))
      const none = yield* Client.openEventStream({
        port: harness.port,
        method: "GET",
        path: `/api/sessions/s-e/events?after=${all.length}`,
        headers: Harness.alice
      })
      expect(yield* none.ended.pipe(Effect.timeout("10 seconds"))).toEqual([])
      const bad = yield* Client.requestJson({
        port: harness.port,
        method: "GET",
        path: "/api/sessions/s-e/events",
        headers: { ...Harness.alice, "last-event-id": "abc" }
      })
      expect(bad.status).toBe(400)
      expect(bad.json.error._tag).toBe("BadRequest")
    })
  )

  it.scopedLive("an ended run is replayed until retainEnded; then the session is idle and its run gone", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: Harness.orderThenSlowText(3, "5 millis"),
        retainEnded: "3 seconds"
      })
      const get = (path: string) =>
        Client.requestJson({ port: harness.port, method: "GET", path, headers: Harness.alice })
      const send = (message: string) =>
        Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/s-r/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message })
        })
      const first = yield* send("buy")
      const all = yield* first.ended.pipe(Effect.timeout("10 seconds"))
      expectContiguous(all)
      expect((yield* get("/api/sessions/s-r")).json).toMatchObject({ status: "ended", outcome: { _tag: "Completed" } })
      const replay = yield* Client.openEventStream({
        port: harness.port,
        method: "GET",
        path: "/api/sessions/s-r/events",
        headers: Harness.alice
      })
      expect((yield* replay.ended.pipe(Effect.timeout("10 seconds"))).map((e) => e.id)).toEqual(all.map((e) => e.id))

      // Within a sweep (every 3 seconds here) after the 3 seconds have passed, the run is forgotten.
      const idle = yield* get("/api/sessions/s-r").pipe(
        Effect.delay("100 millis"),
        Effect.repeat({ until: (answer) => answer.json.status !== "ended" }),
        Effect.timeout("10 seconds")
      )
      expect(idle.json).toMatchObject({ sessionId: "s-r", status: "idle", messages: 4 })
      expect(yield* harness.registry.get("s-r")).toEqual(Option.none())
      expect((yield* get("/api/sessions/s-r/events")).status).toBe(404)
      const stop = yield* Client.requestJson({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-r/cancel",
        headers: Harness.alice
      })
      expect(stop.status).toBe(404)
      // The conversation is the session's, not the run's: the next message goes on from it.
      const next = yield* send("again")
      expect((yield* next.ended.pipe(Effect.timeout("10 seconds"))).at(-1)?.event).toBe("RunCompleted")
      const requests = yield* harness.model.requests
      expect(requests.at(-1)?.messages.length).toBeGreaterThan(1)
    })
  )

  it.scopedLive("a session idle past retainIdle is forgotten; its id starts afresh, without the old conversation", () =>
    Effect.gen(function* () {
      // The store forgets the session long before the registry forgets its run.
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(2, "5 millis"), retainIdle: "1 second" })
      const send = (who: Record<string, string>, message: string) =>
        Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/s-i/messages",
          headers: who,
          body: JSON.stringify({ message })
        }).pipe(Effect.flatMap((stream) => stream.ended.pipe(Effect.timeout("10 seconds"))))
      const status = (who: Record<string, string>) =>
        Client.requestJson({ port: harness.port, method: "GET", path: "/api/sessions/s-i", headers: who })

      expect((yield* send(Harness.alice, "buy a secret gift")).at(-1)?.event).toBe("RunCompleted")
      const gone = yield* status(Harness.alice).pipe(
        Effect.delay("100 millis"),
        Effect.repeat({ until: (answer) => answer.status === 404 }),
        Effect.timeout("10 seconds")
      )
      expect(gone.json.error._tag).toBe("SessionNotFound")
      expect(Option.isSome(yield* harness.registry.get("s-i"))).toBe(true)

      const before = (yield* harness.model.requests).length
      expect((yield* send(Harness.bob, "hello")).at(-1)?.event).toBe("RunCompleted")
      const first = (yield* harness.model.requests)[before]!
      expect(first.messages).toEqual([{ role: "user", content: [{ type: "text", text: "hello" }] }])
      expect((yield* status(Harness.bob)).json).toMatchObject({ status: "ended", messages: 4 })
      expect((yield* status(Harness.alice)).status).toBe(403)
    })
  )
})
