import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Storage from "../src/Storage.js"
import * as Harness from "./support/harness.js"
import * as Scenarios from "./support/scenarios.js"

const { alice, ask, orderStagedAndAnswering } = Scenarios

describe("chat server (real SDK against FakeAnthropic, SQLite)", () => {
  it.scopedLive("the page sets a signed cookie; without it, or with a forged one, the API answers 401", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start()
      const page = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/" })
      expect(page.status).toBe(200)
      expect(page.headers["content-type"]).toMatch(/text\/html/)
      const setCookie = String(page.headers["set-cookie"])
      expect(setCookie).toMatch(/^tether_caller=guest-[^;]+; Max-Age=2592000; Path=\/; HttpOnly; SameSite=Strict/)
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
    Scenarios.completedRunCommitsItsOrder(Harness.start)
  )

  it.scopedLive("Stop while the answer streams: the API request is aborted and the order never appears", () =>
    Scenarios.stopRollsBackItsOrder(Harness.start)
  )

  it.scopedLive("a conversation outlives a restart of the server: its session is a row of the SQLite file", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-chat-restart-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const file = path.join(dir, "chat.db")
      yield* Scenarios.conversationOutlivesARestart((offline) => Harness.start(offline, Storage.layerSqlite(file)))
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
