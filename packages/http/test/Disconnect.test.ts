import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule, Stream } from "effect"
import { Agent } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

const start = (port: number, sessionId: string, body: object) =>
  Client.openEventStream({
    port,
    method: "POST",
    path: `/api/sessions/${sessionId}/messages`,
    headers: Harness.alice,
    body: JSON.stringify(body)
  })

describe("client disconnect (real sockets)", () => {
  it.scopedLive(
    "dropping the connection cancels the run with ClientDisconnected, closes the model stream and rolls back",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(200, "50 millis") })
        const stream = yield* start(harness.port, "s-1", { message: "buy something" })
        expect(stream.status).toBe(200)
        expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/)
        yield* stream
          .waitFor((events) => events.filter((e) => e.event === "TextDelta").length >= 2)
          .pipe(Effect.timeout("10 seconds"))
        expect(stream.events.map((e) => e.event)).toContain("WriteStaged")
        expect(yield* harness.model.openStreams).toBe(1)

        const droppedAt = performance.now()
        yield* stream.destroy
        const outcome = yield* Harness.outcomeOf(harness, "s-1")
        const cancelledAfter = performance.now() - droppedAt

        expect(outcome).toMatchObject({
          _tag: "Cancelled",
          reason: { _tag: "ClientDisconnected" },
          writesRolledBack: 1
        })
        expect(yield* harness.model.openStreams).toBe(0)
        expect((yield* harness.committed).size).toBe(0)
        expect(yield* harness.registry.running).toEqual([])
        yield* Effect.logInfo(`socket drop -> run cancelled in ${cancelledAfter.toFixed(1)} ms`)

        // The server keeps serving: the status says what happened, and a new message starts a run.
        const status = yield* Client.requestJson({
          port: harness.port,
          method: "GET",
          path: "/api/sessions/s-1",
          headers: Harness.alice
        })
        expect(status.status).toBe(200)
        expect(status.json).toMatchObject({
          status: "ended",
          outcome: { _tag: "Cancelled", reason: { _tag: "ClientDisconnected" }, writesRolledBack: 1 }
        })
        const next = yield* start(harness.port, "s-2", { message: "hello" })
        expect(next.status).toBe(200)
        yield* next.waitFor((events) => events.some((e) => e.event === "TextDelta")).pipe(Effect.timeout("10 seconds"))
        yield* next.destroy
      })
  )

  it.scopedLive(
    "a drop mid-stream reaches the run's cancel first, before the response's events are torn down (no unwinding first)",
    () =>
      Effect.gen(function* () {
        const happened: Array<string> = []
        const harness = yield* Harness.start({
          script: Harness.orderThenSlowText(200, "50 millis"),
          wrapRuns: (runs) => ({
            ...runs,
            start: (request) =>
              Effect.map(runs.start(request), (started) => ({
                ...started,
                events: Stream.ensuring(
                  started.events,
                  Effect.sync(() => void happened.push("events torn down"))
                ),
                cancel: (reason) =>
                  Effect.zipRight(
                    Effect.sync(() => void happened.push(`cancel ${reason._tag}`)),
                    started.cancel(reason)
                  )
              }))
          })
        })
        const stream = yield* start(harness.port, "s-first", { message: "buy something" })
        yield* stream
          .waitFor((events) => events.filter((e) => e.event === "TextDelta").length >= 2)
          .pipe(Effect.timeout("10 seconds"))
        yield* stream.destroy
        const outcome = yield* Harness.outcomeOf(harness, "s-first")
        expect(outcome).toMatchObject({
          _tag: "Cancelled",
          reason: { _tag: "ClientDisconnected" },
          writesRolledBack: 1
        })
        // The response unwinds after the cancel: wait for it.
        yield* Effect.sync(() => happened.length).pipe(
          Effect.repeat({ until: (count) => count >= 2, schedule: Schedule.spaced("5 millis") }),
          Effect.timeout("5 seconds")
        )
        expect(happened).toEqual(["cancel ClientDisconnected", "events torn down"])
        expect(yield* harness.model.openStreams).toBe(0)
        expect((yield* harness.committed).size).toBe(0)
        const status = yield* Client.requestJson({
          port: harness.port,
          method: "GET",
          path: "/api/sessions/s-first",
          headers: Harness.alice
        })
        expect(status.json).toMatchObject({ status: "ended", outcome: { reason: { _tag: "ClientDisconnected" } } })
      })
  )

  it.scopedLive("a connection dropped as soon as the headers arrive still cancels the run", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(200, "50 millis") })
      const stream = yield* start(harness.port, "s-early", { message: "buy" })
      yield* stream.destroy
      const outcome = yield* Harness.outcomeOf(harness, "s-early")
      expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "ClientDisconnected" } })
      expect(yield* harness.model.openStreams).toBe(0)
      expect((yield* harness.committed).size).toBe(0)
    })
  )

  it.scopedLive("a client that stays until the end gets every event once, in order, ending with RunCompleted", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: Harness.orderThenSlowText(5, "5 millis") })
      const stream = yield* start(harness.port, "s-done", { message: "buy" })
      const events = yield* stream.ended.pipe(Effect.timeout("10 seconds"))
      expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1))
      expect(events[0]).toMatchObject({ event: "RunStarted", data: { _tag: "RunStarted", sessionId: "s-done" } })
      expect(events.at(-1)).toMatchObject({ event: "RunCompleted", data: { _tag: "RunCompleted" } })
      expect(events.map((e) => e.event)).toContain("Committed")
      const outcome = yield* Harness.outcomeOf(harness, "s-done")
      expect(outcome).toMatchObject({ _tag: "Completed", writesCommitted: 1 })
      expect((yield* harness.committed).get("orders")?.get("o-1")).toEqual({ id: "o-1", total: 3 })
    })
  )

  it.scopedLive("a quiet stream gets keep-alive comments, which clients ignore", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: [[ScriptedModel.delay("400 millis"), ...ScriptedModel.text("late")]],
        agent: Agent.make({ name: "slow" }),
        routes: { keepAliveInterval: "50 millis" }
      })
      const stream = yield* start(harness.port, "s-quiet", { message: "hi" })
      const events = yield* stream.ended.pipe(Effect.timeout("10 seconds"))
      expect(stream.text()).toMatch(/^: keep-alive$/m)
      expect(events.at(-1)?.event).toBe("RunCompleted")
    })
  )
})
