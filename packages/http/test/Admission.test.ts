/**
 * Admission and independence of the session routes, over real sockets: a start past the cap of live runs is answered
 * at once with 503 and `Retry-After` (or waits in the bounded queue), starts of different sessions never wait on each
 * other, Stop and status are answered while starts are held, and the per-caller limit holds under concurrent starts
 * without reading the caller's sessions. Starts are held by a session store whose `get` waits on a gate.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Queue } from "effect"
import { SessionStore } from "@tether/core"
import { SessionRoutes } from "@tether/http"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"
import * as Raw from "./support/rawClient.js"

const request = (port: number, headers: Record<string, string>, method: "GET" | "POST", path: string) =>
  Client.requestJson({ port, method, path: `/api${path}`, headers })

/**
 * The in-memory store, but `get` of a session whose id starts with `held` waits for `gate` (after telling `reached`),
 * and `ownedBy` is counted.
 */
const gatedStore = Effect.gen(function* () {
  const gate = yield* Deferred.make<void>()
  const reached = yield* Queue.unbounded<string>()
  const calls = { ownedBy: 0 }
  const layer = Layer.scoped(
    SessionStore.SessionStore,
    Effect.map(SessionStore.makeMemory(), (store): SessionStore.Service => ({
      ...store,
      get: (sessionId) =>
        sessionId.startsWith("held")
          ? Queue.offer(reached, sessionId).pipe(
              Effect.zipRight(Deferred.await(gate)),
              Effect.zipRight(store.get(sessionId))
            )
          : store.get(sessionId),
      ownedBy: (owner) => Effect.sync(() => calls.ownedBy++).pipe(Effect.zipRight(store.ownedBy(owner)))
    }))
  )
  return { layer, open: Deferred.succeed(gate, undefined), reached, calls }
})

const slow = Harness.orderThenSlowText(400, "50 millis")

/** `effect` again, 20 ms apart, until its value satisfies `predicate` (at most 5 s). */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, predicate: (a: A) => boolean) =>
  Effect.repeat(Effect.delay(effect, "20 millis"), { until: predicate, times: 250 })

/** Posts to `sessionId` (20 ms apart, at most 5 s) until the answer has `status`; the other answers are closed. */
const postUntil = (port: number, headers: Record<string, string>, sessionId: string, status: number) =>
  eventually(
    Effect.tap(Harness.postMessage(port, headers, sessionId), (answer) =>
      answer.status === status ? Effect.void : answer.destroy
    ),
    (answer) => answer.status === status
  )

describe("admission", () => {
  it.scopedLive("a start past maxLiveRuns is answered at once: 503 Overloaded with Retry-After, nothing claimed", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: slow, runs: { maxLiveRuns: 2, retryAfter: "3 seconds" } })
      const one = yield* Harness.postMessage(harness.port, Harness.alice, "s-1")
      const two = yield* Harness.postMessage(harness.port, Harness.bob, "s-2")
      expect([one.status, two.status]).toEqual([200, 200])

      const refused = yield* Harness.postMessage(harness.port, Harness.alice, "s-3")
      expect(refused.status).toBe(503)
      expect(refused.headers["retry-after"]).toBe("3")
      expect(JSON.parse(refused.text()).error).toMatchObject({ _tag: "Overloaded", limit: 2, retryAfterSeconds: 3 })
      expect(Option.isNone(yield* harness.store.get("s-3"))).toBe(true)

      // A stopped run has given its place back by the time the Stop is answered.
      const stopped = yield* request(harness.port, Harness.alice, "POST", "/sessions/s-1/cancel")
      expect(stopped.json.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
      const again = yield* Harness.postMessage(harness.port, Harness.alice, "s-3")
      expect(again.status).toBe(200)
      yield* Effect.forEach([one, two, again], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("a start holds its place from its arrival: the next is refused before the first sent its body", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: slow, runs: { maxLiveRuns: 1 } })
      // The first start sends its headers and holds its body back: it has not reached its run yet.
      const body = JSON.stringify({ message: "buy" })
      const first = yield* Raw.connect(harness.port)
      yield* first.write(
        "POST /api/sessions/early-1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer token-alice\r\n" +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`
      )
      // Its place is taken as soon as it arrived (a look that only counted runs let the burst through).
      const second = yield* postUntil(harness.port, Harness.bob, "early-2", 503)
      expect(second.status).toBe(503)
      expect(JSON.parse(second.text()).error).toMatchObject({ _tag: "Overloaded", limit: 1 })
      expect(Option.isNone(yield* harness.store.get("early-2"))).toBe(true)

      // The body arrives: the first start runs in the place it held.
      yield* first.write(body)
      const run = yield* eventually(harness.registry.get("early-1"), Option.isSome)
      expect(Option.isSome(run)).toBe(true)
      expect(JSON.parse((yield* Harness.postMessage(harness.port, Harness.bob, "early-3")).text()).error._tag).toBe(
        "Overloaded"
      )
    })
  )

  it.scopedLive("a held place is given back when its start never starts (the client went away)", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: slow, runs: { maxLiveRuns: 1 } })
      const gone = yield* Effect.scoped(
        Effect.gen(function* () {
          const client = yield* Raw.connect(harness.port)
          yield* client.write(
            "POST /api/sessions/gone-1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer token-alice\r\n" +
              "content-type: application/json\r\ncontent-length: 100\r\n\r\n{"
          )
          return yield* postUntil(harness.port, Harness.bob, "gone-2", 503)
        })
      )
      expect(gone.status).toBe(503)
      // The first client's socket is closed: its start ends without a run, and its place is free again.
      const admitted = yield* postUntil(harness.port, Harness.bob, "gone-3", 200)
      expect(admitted.status).toBe(200)
      expect(Option.isNone(yield* harness.registry.get("gone-1"))).toBe(true)
      yield* admitted.destroy
    })
  )

  it.scopedLive("with a queue, a start past the cap waits for a place; past the queue it is refused at once", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: slow,
        runs: { maxLiveRuns: 1, maxQueuedStarts: 1, queueTimeout: "60 seconds" }
      })
      const one = yield* Harness.postMessage(harness.port, Harness.alice, "q-1")
      expect(one.status).toBe(200)
      // Two starts past the cap at once: one waits in the queue (of one), the other is refused without waiting.
      const two = yield* Effect.forEach(
        [
          [Harness.alice, "q-2"],
          [Harness.bob, "q-3"]
        ] as const,
        ([headers, id]) => Effect.fork(Harness.postMessage(harness.port, headers, id))
      )
      const polls = yield* eventually(Effect.forEach(two, Fiber.poll), (polls) => polls.some(Option.isSome))
      const refusedAt = polls.findIndex(Option.isSome)
      const refused = yield* Fiber.join(two[refusedAt]!)
      const queued = two[1 - refusedAt]!
      expect(refused.status).toBe(503)
      expect(JSON.parse(refused.text()).error._tag).toBe("Overloaded")
      expect(Option.isNone(yield* Fiber.poll(queued))).toBe(true)
      expect(Option.isNone(yield* harness.store.get(refusedAt === 0 ? "q-3" : "q-2"))).toBe(true)

      yield* request(harness.port, Harness.alice, "POST", "/sessions/q-1/cancel")
      const admitted = yield* Fiber.join(queued)
      expect(admitted.status).toBe(200)
      yield* admitted.waitFor((events) => events.some((event) => event.event === "RunStarted"))
      yield* Effect.forEach([one, admitted], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("a start that waits in the queue past queueTimeout gets 503, and claims nothing", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: slow,
        runs: { maxLiveRuns: 1, maxQueuedStarts: 5, queueTimeout: "200 millis" }
      })
      const one = yield* Harness.postMessage(harness.port, Harness.alice, "t-1")
      expect(one.status).toBe(200)
      const late = yield* Harness.postMessage(harness.port, Harness.bob, "t-2")
      expect(late.status).toBe(503)
      expect(JSON.parse(late.text()).error).toMatchObject({ _tag: "Overloaded", limit: 1 })
      expect(late.headers["retry-after"]).toBe("2")
      expect(Option.isNone(yield* harness.store.get("t-2"))).toBe(true)
      yield* one.destroy
    })
  )

  it.scopedLive("a start that supersedes its session's run at the cap takes the place that run gave back", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: slow,
        runs: { maxLiveRuns: 1 },
        routes: { onConflict: "supersede" }
      })
      const first = yield* Harness.postMessage(harness.port, Harness.alice, "sup-1")
      yield* first.waitFor((events) => events.some((event) => event.event === "RunStarted"))
      const second = yield* Harness.postMessage(harness.port, Harness.alice, "sup-1")
      expect(second.status).toBe(200)
      const ended = yield* first.ended
      expect(ended.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "Superseded" } } })
      yield* second.destroy
    })
  )
})

describe("refuseWhenFull", () => {
  it.scopedLive("at the cap it gives a start the routes' own 503, and nothing else; with a place free, nothing", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: slow, runs: { maxLiveRuns: 1, retryAfter: "4 seconds" } })
      const refuse = SessionRoutes.refuseWhenFull(harness.runs, { prefix: "/api" })
      const start = { method: "POST", url: "/api/sessions/s-2/messages" }
      expect(refuse(start)).toBeUndefined()

      const one = yield* Harness.postMessage(harness.port, Harness.alice, "s-1")
      expect(one.status).toBe(200)
      const routes = yield* Harness.postMessage(harness.port, Harness.bob, "s-2")
      expect(routes.status).toBe(503)
      const early = refuse(start)
      expect(early?.status).toBe(503)
      expect(JSON.parse(early?.body ?? "null")).toEqual(JSON.parse(routes.text()))
      expect(early?.headers).toMatchObject({
        "retry-after": routes.headers["retry-after"],
        "content-type": "application/json",
        connection: "close"
      })
      expect(refuse({ method: "POST", url: "/api/sessions/s-2/messages?x=1" })?.status).toBe(503)
      for (const other of [
        { method: "POST", url: "/api/sessions/s-1/cancel" },
        { method: "GET", url: "/api/sessions/s-1" },
        { method: "GET", url: "/api/sessions/s-1/events" },
        { method: "POST", url: "/other/sessions/s-2/messages" },
        { method: "POST", url: "/api/sessions/s-2/messages/more" }
      ]) {
        expect(refuse(other)).toBeUndefined()
      }

      yield* request(harness.port, Harness.alice, "POST", "/sessions/s-1/cancel")
      expect(refuse(start)).toBeUndefined()
      yield* one.destroy
    })
  )
})

describe("independence", () => {
  it.scopedLive("a start whose store read is held does not hold up the start of another session", () =>
    Effect.gen(function* () {
      const store = yield* gatedStore
      const harness = yield* Harness.start({ script: slow, sessionStore: store.layer })
      // Held starts are let go before the server closes, also when the test fails.
      yield* Effect.addFinalizer(() => store.open)
      const held = yield* Effect.fork(Harness.postMessage(harness.port, Harness.alice, "held-1"))
      expect(yield* Queue.take(store.reached)).toBe("held-1")

      const free = yield* Harness.postMessage(harness.port, Harness.bob, "free-1").pipe(Effect.timeout("10 seconds"))
      expect(free.status).toBe(200)
      yield* free.waitFor((events) => events.some((event) => event.event === "RunStarted"))
      expect(Option.isNone(yield* Fiber.poll(held))).toBe(true)

      yield* store.open
      const released = yield* Fiber.join(held)
      expect(released.status).toBe(200)
      yield* Effect.forEach([free, released], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("Stop and status are answered while starts of other sessions are held", () =>
    Effect.gen(function* () {
      const store = yield* gatedStore
      const harness = yield* Harness.start({
        script: slow,
        sessionStore: store.layer,
        routes: { limits: { maxRunningPerCaller: 10 } }
      })
      // Held starts are let go before the server closes, also when the test fails.
      yield* Effect.addFinalizer(() => store.open)
      const running = yield* Harness.postMessage(harness.port, Harness.alice, "running-1")
      yield* running.waitFor((events) => events.some((event) => event.event === "RunStarted"))
      const held = yield* Effect.forEach(["held-1", "held-2", "held-3", "held-4", "held-5"], (id) =>
        Effect.fork(Harness.postMessage(harness.port, Harness.bob, id))
      )
      // Every held start is in its store read at once: none waits for another.
      const reached = yield* Effect.forEach(held, () => Queue.take(store.reached).pipe(Effect.timeout("10 seconds")))
      expect([...reached].sort()).toEqual(["held-1", "held-2", "held-3", "held-4", "held-5"])

      const stopped = yield* request(harness.port, Harness.alice, "POST", "/sessions/running-1/cancel")
      expect(stopped.status).toBe(200)
      expect(stopped.json).toMatchObject({
        wasRunning: true,
        outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" } }
      })
      const status = yield* request(harness.port, Harness.alice, "GET", "/sessions/running-1")
      expect(status.json).toMatchObject({ status: "ended", outcome: { _tag: "Cancelled" } })
      const events = yield* running.ended
      expect(events.at(-1)?.event).toBe("RunCancelled")
      // ...and all of that before any held start was answered.
      for (const fiber of held) expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)

      yield* store.open
      const answered = yield* Effect.forEach(held, Fiber.join)
      expect(answered.map((stream) => stream.status)).toEqual([200, 200, 200, 200, 200])
      yield* Effect.forEach(answered, (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("of two concurrent starts past the per-caller limit exactly one is admitted, without ownedBy", () =>
    Effect.gen(function* () {
      const store = yield* gatedStore
      const harness = yield* Harness.start({
        script: slow,
        sessionStore: store.layer,
        routes: { limits: { maxRunningPerCaller: 1 } }
      })
      // Held starts are let go before the server closes, also when the test fails.
      yield* Effect.addFinalizer(() => store.open)
      const both = yield* Effect.forEach(["held-a", "held-b"], (id) =>
        Effect.fork(Harness.postMessage(harness.port, Harness.alice, id))
      )
      // Both starts are past their checks' first step at the same time: the limit is not held by a lock.
      yield* Effect.forEach(both, () => Queue.take(store.reached).pipe(Effect.timeout("10 seconds")))
      yield* store.open
      const answered = yield* Effect.forEach(both, Fiber.join)
      expect(answered.map((stream) => stream.status).sort()).toEqual([200, 429])
      const refused = answered.find((stream) => stream.status === 429)!
      expect(JSON.parse(refused.text()).error).toMatchObject({ _tag: "TooManyRuns", limit: 1 })
      expect(store.calls.ownedBy).toBe(0)
      yield* Effect.forEach(answered, (stream) => stream.destroy, { discard: true })
    })
  )
})
