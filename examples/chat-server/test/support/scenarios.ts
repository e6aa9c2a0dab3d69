/**
 * What the chat-server tests share: a caller, sending a message, waiting for an order, and the scenarios that each
 * storage runs (SQLite in ChatServer.test.ts, PostgreSQL in ChatServerPg.test.ts).
 */
import { expect } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Option, Schedule } from "effect"
import { SessionClient as Client } from "@tether/testing"
import type * as OfflineScript from "../../src/OfflineScript.js"
import * as Harness from "./harness.js"

export const alice = await Effect.runPromise(Harness.cookieFor("alice"))

export const ask = (
  harness: Harness.Harness,
  sessionId: string,
  message: string,
  headers: Record<string, string> = alice
) =>
  Client.openEventStream({
    port: harness.port,
    method: "POST",
    path: `/api/sessions/${sessionId}/messages`,
    headers,
    body: JSON.stringify({ message })
  })

/** Until the order is staged and the final answer (after it) streams. */
export const orderStagedAndAnswering = (events: ReadonlyArray<Client.SseEvent>) => {
  const staged = events.find((e) => e.event === "WriteStaged")
  return (
    staged !== undefined &&
    events.some((e) => e.event === "TextDelta" && e.data.agent === "assistant" && e.id! > staged.id!)
  )
}

/** The fake API's request that was streaming last: closed by the client, never finished. */
export const lastModelRequest = (harness: Harness.Harness) =>
  Effect.gen(function* () {
    const count = yield* harness.fake.requestCount
    return yield* harness.fake.awaitEnded(count - 1).pipe(Effect.timeout("10 seconds"))
  })

/** Starts the chat server with the given offline script, on some storage. */
export type Start = (offline: OfflineScript.Options) => Effect.Effect<Harness.Harness, never, Scope.Scope>

/** A run that completes commits its order: research, expert sub-agent, order, answer. */
export const completedRunCommitsItsOrder = (start: Start) =>
  Effect.gen(function* () {
    const harness = yield* start({ answerWords: 10 })
    const stream = yield* ask(harness, "s-done", "Find a quiet grinder and order two")
    const events = yield* stream.ended.pipe(Effect.timeout("20 seconds"))
    const tags = events.map((e) => e.event)
    expect(tags.at(-1)).toBe("RunCompleted")
    expect(events.filter((e) => e.event === "ToolSucceeded").map((e) => e.data.tool)).toEqual([
      "research",
      "ask_expert",
      "place_order"
    ])
    expect(events.filter((e) => e.event === "SubtaskEnded").map((e) => e.data.outcome)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded"
    ])
    expect(events.some((e) => e.event === "TextDelta" && e.data.agent === "assistant/expert")).toBe(true)
    expect(events.find((e) => e.event === "Committed")?.data.count).toBe(1)
    const orders = yield* harness.orders.list
    expect(orders).toHaveLength(1)
    expect(orders[0]).toMatchObject({ item: "quiet grinder", quantity: 2 })
  })

/** Stop while the answer streams: the API request is aborted and the order never appears. */
export const stopRollsBackItsOrder = (start: Start) =>
  Effect.gen(function* () {
    const harness = yield* start({ answerWords: 400 })
    const stream = yield* ask(harness, "s-stop", "Order a kettle")
    yield* stream.waitFor(orderStagedAndAnswering).pipe(Effect.timeout("20 seconds"))
    const stop = yield* Client.requestJson({
      port: harness.port,
      method: "POST",
      path: "/api/sessions/s-stop/cancel",
      headers: alice
    })
    expect(stop.json).toMatchObject({
      wasRunning: true,
      outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" }, writesRolledBack: 1 }
    })
    const events = yield* stream.ended.pipe(Effect.timeout("10 seconds"))
    expect(events.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "UserAbort" } } })
    const request = yield* lastModelRequest(harness)
    expect(request.isFinished).toBe(false)
    expect(request.closedAt).toBeDefined()
    expect(yield* harness.orders.list).toEqual([])
    const listed = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/orders", headers: alice })
    expect(listed.json).toEqual({ orders: [] })
  })

/**
 * A conversation outlives a restart of the server: `start` puts every server it starts on the same database. The
 * session, its owner and its transcript come back; the next message goes on from them.
 */
export const conversationOutlivesARestart = (start: Start) =>
  Effect.gen(function* () {
    const first = yield* start({ answerWords: 5 })
    const events = yield* (yield* ask(first, "s-keep", "Find a quiet grinder and order one")).ended.pipe(
      Effect.timeout("20 seconds")
    )
    expect(events.at(-1)?.event).toBe("RunCompleted")
    const ended = yield* Harness.waitForStatus(first, alice, "s-keep", (status) => status.status === "ended")
    // The store writes an ended run's transcript right after the run ends.
    yield* first.sessions.get("s-keep").pipe(
      Effect.map((session) => Option.getOrThrow(session).transcript.length),
      Effect.filterOrFail((length) => length === ended.messages),
      Effect.retry(Schedule.spaced("20 millis")),
      Effect.timeout("10 seconds")
    )
    yield* first.shutdown

    const second = yield* start({ answerWords: 5 })
    const status = (headers: Record<string, string>) =>
      Client.requestJson({ port: second.port, method: "GET", path: "/api/sessions/s-keep", headers })
    expect((yield* status(alice)).json).toMatchObject({ status: "idle", messages: ended.messages })
    expect((yield* status(yield* Harness.cookieFor("bob"))).status).toBe(403)
    const next = yield* (yield* ask(second, "s-keep", "And a kettle?")).ended.pipe(Effect.timeout("20 seconds"))
    expect(next.at(-1)?.event).toBe("RunCompleted")
    const request = (yield* second.fake.requests)[0]!
    expect(request.request?.messages.length).toBe(ended.messages + 1)
  })
