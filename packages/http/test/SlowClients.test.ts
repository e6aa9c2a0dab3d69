/**
 * Slow bodies, on real sockets: a message body trickling in a byte a second, or announced and never sent, is
 * answered 408 `RequestTimeout` once `bodyTimeout` has passed, and its connection is closed; no run starts, and the
 * server goes on serving others.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { ScriptedModel, SessionClient as Client } from "@tether/testing"
import { alice, start } from "./support/harness.js"
import * as Raw from "./support/rawClient.js"

const body = JSON.stringify({ message: "hello there" })

const head = (sessionId: string) =>
  [
    `POST /api/sessions/${sessionId}/messages HTTP/1.1`,
    "Host: 127.0.0.1",
    `Authorization: ${alice.authorization}`,
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "",
    ""
  ].join("\r\n")

const statusOf = (received: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)

describe("a slow request body", () => {
  it.scopedLive(
    "trickling a byte a second, or announced and never sent: 408 after bodyTimeout, connection closed",
    () =>
      Effect.gen(function* () {
        const harness = yield* start({
          script: () => ScriptedModel.text("hi"),
          routes: { limits: { bodyTimeout: "1 second" } }
        })
        const trickling = yield* Effect.all(Array.from({ length: 10 }, () => Raw.connect(harness.port)))
        yield* Effect.forEach(
          trickling,
          (client, i) =>
            client.write(head(`slow-${i}`)).pipe(Effect.zipRight(Effect.forkScoped(client.trickle(body, "1 second")))),
          { discard: true }
        )
        const silent = yield* Effect.all(Array.from({ length: 5 }, () => Raw.connect(harness.port)))
        yield* Effect.forEach(silent, (client, i) => client.write(head(`silent-${i}`)), { discard: true })

        // Meanwhile another client is served as usual.
        const other = yield* Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/other/messages",
          headers: alice,
          body
        })
        expect((yield* other.ended).at(-1)?.event).toBe("RunCompleted")

        const ends = yield* Effect.forEach([...trickling, ...silent], (client) => client.closed).pipe(
          Effect.timeout("8 seconds")
        )
        for (const end of ends) {
          expect(statusOf(end.received), JSON.stringify(end)).toBe(408)
          expect(end.received).toMatch(/"_tag":"RequestTimeout"/)
          expect(end.afterMillis).toBeGreaterThanOrEqual(900)
        }
        yield* Effect.logInfo(
          `slow bodies answered 408 after ${ends.map((e) => e.afterMillis.toFixed(0)).join(", ")} ms`
        )
        // Only the other client's run started.
        expect((yield* harness.model.requests).length).toBe(1)
      })
  )

  it.scopedLive("a body that arrives within bodyTimeout, even slowly, is read", () =>
    Effect.gen(function* () {
      const harness = yield* start({
        script: () => ScriptedModel.text("hi"),
        routes: { limits: { bodyTimeout: "5 seconds" } }
      })
      const client = yield* Raw.connect(harness.port)
      yield* client.write(head("patient"))
      yield* client.trickle(body, "50 millis")
      const run = yield* harness.registry
        .get("patient")
        .pipe(Effect.flatten, Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds"))), Effect.orDie)
      expect((yield* run.outcome)._tag).toBe("Completed")
    })
  )
})
