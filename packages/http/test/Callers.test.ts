/**
 * What the routes know of the caller beyond the session: the runs one client address may have going whatever
 * callers it names, and the caller each run acts for (`Auth.CurrentCaller`), over real sockets.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { Auth } from "@tether/http"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

describe("callers", () => {
  it.scopedLive("runs per client address are capped whatever callers it names (429), then free again", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: Harness.orderThenSlowText(400, "50 millis"),
        routes: { limits: { maxRunningPerCaller: 5, maxRunningPerAddress: 3 } }
      })
      const first = yield* Effect.forEach(
        [
          [Harness.alice, "a-1"],
          [Harness.alice, "a-2"],
          [Harness.bob, "b-1"]
        ] as const,
        ([headers, sessionId]) => Harness.postMessage(harness.port, headers, sessionId)
      )
      expect(first.map((stream) => stream.status)).toEqual([200, 200, 200])
      for (const [headers, sessionId] of [
        [Harness.bob, "b-2"],
        [Harness.alice, "a-3"]
      ] as const) {
        const refused = yield* Harness.postMessage(harness.port, headers, sessionId)
        expect(refused.status).toBe(429)
        expect(JSON.parse(refused.text()).error).toMatchObject({
          _tag: "TooManyRuns",
          limit: 3,
          message: "at most 3 runs may go at once from one client address"
        })
        expect(Option.isNone(yield* harness.store.get(sessionId))).toBe(true)
      }
      // A message to a session already going from this address does not count its own run.
      const cancelled = yield* Client.requestJson({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/a-1/cancel",
        headers: Harness.alice
      })
      expect(cancelled.json.wasRunning).toBe(true)
      const again = yield* Harness.postMessage(harness.port, Harness.bob, "b-2")
      expect(again.status).toBe(200)
      yield* Effect.forEach([...first, again], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("behind a proxy, clientAddress tells clients apart", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({
        script: Harness.orderThenSlowText(400, "50 millis"),
        routes: {
          limits: { maxRunningPerCaller: 5, maxRunningPerAddress: 1 },
          clientAddress: (request) => request.headers["x-forwarded-for"]
        }
      })
      const one = yield* Harness.postMessage(
        harness.port,
        { ...Harness.alice, "x-forwarded-for": "203.0.113.1" },
        "p-1"
      )
      const two = yield* Harness.postMessage(
        harness.port,
        { ...Harness.alice, "x-forwarded-for": "203.0.113.2" },
        "p-2"
      )
      const three = yield* Harness.postMessage(
        harness.port,
        { ...Harness.alice, "x-forwarded-for": "203.0.113.1" },
        "p-3"
      )
      expect([one.status, two.status, three.status]).toEqual([200, 200, 429])
      yield* Effect.forEach([one, two], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("each run acts for its caller: a tool reads Auth.CurrentCaller", () =>
    Effect.gen(function* () {
      const recordOwner = Tool.make({
        name: "place_order",
        description: "Places an order for the caller",
        input: Schema.Struct({ id: Schema.String, total: Schema.Number }),
        output: Schema.String,
        handler: (order) =>
          Effect.gen(function* () {
            const owner = yield* Auth.CurrentCaller
            yield* AgentRun.stage(StagedWrites.upsert("orders", `${owner}/${order.id}`, { ...order, owner }))
            return "placed"
          })
      })
      const harness = yield* Harness.start({
        script: Harness.orderThenSlowText(1, "1 millis"),
        agent: Agent.make({ name: "shop", tools: [recordOwner] })
      })
      for (const [headers, sessionId] of [
        [Harness.alice, "o-alice"],
        [Harness.bob, "o-bob"]
      ] as const) {
        const events = yield* Harness.postMessage(harness.port, headers, sessionId).pipe(Effect.flatMap((s) => s.ended))
        expect(events.at(-1)?.event).toBe("RunCompleted")
      }
      const orders = (yield* harness.committed).get("orders")
      expect([...(orders?.keys() ?? [])].sort()).toEqual(["alice/o-1", "bob/o-1"])
      expect(orders?.get("bob/o-1")).toMatchObject({ owner: "bob" })
    })
  )
})
