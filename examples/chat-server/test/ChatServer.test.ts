import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

const alice = Harness.cookieFor("alice")

const ask = (harness: Harness.Harness, sessionId: string, message: string, headers: Record<string, string> = alice) =>
  Client.openEventStream({
    port: harness.port,
    method: "POST",
    path: `/api/sessions/${sessionId}/messages`,
    headers,
    body: JSON.stringify({ message })
  })

/** Until the order is staged and the final answer (after it) streams. */
const orderStagedAndAnswering = (events: ReadonlyArray<Client.SseEvent>) => {
  const staged = events.find((e) => e.event === "WriteStaged")
  return (
    staged !== undefined &&
    events.some((e) => e.event === "TextDelta" && e.data.agent === "assistant" && e.id! > staged.id!)
  )
}

/** The fake API's request that was streaming last: closed by the client, never finished. */
const lastModelRequest = (harness: Harness.Harness) =>
  Effect.gen(function* () {
    const count = yield* harness.fake.requestCount
    return yield* harness.fake.awaitEnded(count - 1).pipe(Effect.timeout("10 seconds"))
  })

describe("chat server (real SDK against FakeAnthropic, SQLite)", () => {
  it.scopedLive("the page sets a signed cookie; without it, or with a forged one, the API answers 401", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start()
      const page = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/" })
      expect(page.status).toBe(200)
      expect(page.headers["content-type"]).toMatch(/text\/html/)
      const setCookie = String(page.headers["set-cookie"])
      expect(setCookie).toMatch(/^tether_caller=guest-[^;]+; Path=\/; HttpOnly; SameSite=Strict/)
      const cookie = setCookie.split(";")[0]!

      const info = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/info" })
      expect(info.json).toMatchObject({ model: { mode: "offline", label: "offline fake" } })

      const anonymous = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/orders" })
      expect(anonymous.status).toBe(401)
      const forged = cookie.replace(/guest-[^.]+/, "guest-someone-else")
      for (const headers of [{}, { cookie: forged }]) {
        const answer = yield* Client.requestJson({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/s-1/messages",
          headers,
          body: JSON.stringify({ message: "hi" })
        })
        expect(answer.status).toBe(401)
        expect(answer.json.error._tag).toBe("Unauthorized")
      }
      const mine = yield* Client.requestJson({
        port: harness.port,
        method: "GET",
        path: "/orders",
        headers: { cookie }
      })
      expect(mine).toMatchObject({ status: 200, json: { orders: [] } })
      expect(yield* harness.fake.requestCount).toBe(0)
    })
  )

  it.scopedLive("a run that completes commits its order: research, expert sub-agent, order, answer", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 10 })
      const stream = yield* ask(harness, "s-done", "Find a quiet grinder and order one")
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
      expect(orders[0]).toMatchObject({ item: "a quiet grinder", quantity: 1 })
    })
  )

  it.scopedLive("Stop while the answer streams: the API request is aborted and the order never appears", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 400 })
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
  )

  it.scopedLive(
    "dropping the connection mid-answer cancels the run: the API request closes, the order rolls back",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ answerWords: 400 })
        const stream = yield* ask(harness, "s-drop", "Order a teapot")
        yield* stream.waitFor(orderStagedAndAnswering).pipe(Effect.timeout("20 seconds"))
        const streaming = yield* harness.fake.requestCount
        const droppedAt = performance.now()
        yield* stream.destroy
        const status = yield* Harness.waitForStatus(harness, alice, "s-drop", (s) => s.status === "ended")
        expect(status.outcome).toMatchObject({
          _tag: "Cancelled",
          reason: { _tag: "ClientDisconnected" },
          writesRolledBack: 1
        })
        const request = yield* harness.fake.awaitEnded(streaming - 1).pipe(Effect.timeout("10 seconds"))
        expect(request.isFinished).toBe(false)
        expect(request.closedAt).toBeDefined()
        yield* Effect.logInfo(
          `client socket drop -> model request closed in ${(request.closedAt! - droppedAt).toFixed(1)} ms`
        )
        expect(yield* harness.fake.requestCount).toBe(streaming)
        expect(yield* harness.orders.list).toEqual([])

        // The server goes on serving: the same session continues the conversation.
        const next = yield* ask(harness, "s-drop", "Just say hello")
        expect(next.status).toBe(200)
        yield* next
          .waitFor((events) => events.some((e) => e.event === "ToolStarted"))
          .pipe(Effect.timeout("10 seconds"))
        yield* next.destroy
      })
  )

  it.scopedLive("shutdown cancels the runs with Shutdown and their streams end with RunCancelled", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 400 })
      const stream = yield* ask(harness, "s-shut", "Order a mug")
      yield* stream
        .waitFor((events) => events.some((e) => e.event === "ToolStarted"))
        .pipe(Effect.timeout("20 seconds"))
      yield* harness.shutdown.pipe(Effect.timeout("15 seconds"))
      const events = yield* stream.ended.pipe(Effect.timeout("5 seconds"))
      expect(events.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "Shutdown" } } })
    })
  )
})
