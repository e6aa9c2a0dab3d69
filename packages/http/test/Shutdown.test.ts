import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

describe("graceful shutdown", () => {
  it.scopedLive(
    "closing the server layer cancels running runs with Shutdown; their event streams end with RunCancelled",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ script: Harness.orderThenSlowText(400, "50 millis") })
        const open = (sessionId: string, disconnect: "cancel" | "detach") =>
          Client.openEventStream({
            port: harness.port,
            method: "POST",
            path: `/api/sessions/${sessionId}/messages`,
            headers: Harness.alice,
            body: JSON.stringify({ message: "buy", disconnect })
          })
        const streams = [yield* open("s-1", "cancel"), yield* open("s-2", "detach")]
        for (const stream of streams) {
          yield* stream
            .waitFor((events) => events.some((e) => e.event === "TextDelta"))
            .pipe(Effect.timeout("10 seconds"))
        }
        const runs = yield* Effect.forEach(["s-1", "s-2"], (id) => harness.registry.get(id).pipe(Effect.flatten))

        const startedAt = performance.now()
        yield* harness.shutdown.pipe(Effect.timeout("15 seconds"))
        const tookMillis = performance.now() - startedAt
        yield* Effect.logInfo(`server layer closed in ${tookMillis.toFixed(1)} ms`)

        for (const stream of streams) {
          const events = yield* stream.ended.pipe(Effect.timeout("5 seconds"))
          expect(events.at(-1)).toMatchObject({
            event: "RunCancelled",
            data: { reason: { _tag: "Shutdown" }, writesRolledBack: 1 }
          })
        }
        for (const run of runs) {
          expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Shutdown" } })
        }
        expect(yield* harness.model.openStreams).toBe(0)
        expect((yield* harness.committed).size).toBe(0)

        // The server no longer accepts connections.
        const after = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/api/sessions/s-1" }).pipe(
          Effect.timeout("5 seconds"),
          Effect.exit
        )
        expect(Exit.isFailure(after)).toBe(true)
      })
  )
})
