import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Duration } from "effect"
import { ScriptedModel, SessionClient as Client } from "@tether/testing"
import * as Chunked from "./support/chunkedClient.js"
import * as Harness from "./support/harness.js"

const deltas = 400

/** `bursts` bursts of `deltas / bursts` text deltas each, emitted back to back, `gap` apart. */
const bursts = (count: number, gap: Duration.DurationInput): ScriptedModel.Script => [
  Array.from({ length: count }, () => [
    ScriptedModel.delay(gap),
    ...ScriptedModel.text("ab".repeat(deltas / count), { chunks: deltas / count })
  ]).flat()
]

const expectEveryEventOnceInOrder = (frames: ReadonlyArray<{ readonly id: number; readonly event: string }>) => {
  expect(frames.map((frame) => frame.id)).toEqual(frames.map((_, i) => i + 1))
  expect(frames.filter((frame) => frame.event === "TextDelta")).toHaveLength(deltas)
  expect(frames.at(-1)?.event).toBe("RunCompleted")
}

describe("SSE batching", () => {
  it.scopedLive("events emitted in one tick go out in fewer writes than events, each once, in order, with its id", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: [ScriptedModel.text("ab".repeat(deltas), { chunks: deltas })] })
      const response = yield* Chunked.request({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-batch/messages",
        headers: Harness.alice,
        body: JSON.stringify({ message: "talk" })
      }).pipe(Effect.timeout("10 seconds"))
      expect(response.status).toBe(200)
      expectEveryEventOnceInOrder(response.frames)
      // One write per event would be as many chunks as frames (408 here); a batch is one chunk.
      expect(response.chunks).toBeLessThan(response.frames.length / 4)
    })
  )

  it.scopedLive("re-attaching from Last-Event-ID mid-run misses nothing and repeats nothing, batched too", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ script: bursts(8, "30 millis") })
      const first = yield* Client.openEventStream({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/s-resume/messages",
        headers: Harness.alice,
        body: JSON.stringify({ message: "talk", disconnect: "detach" })
      })
      yield* first
        .waitFor((events) => events.filter((e) => e.event === "TextDelta").length >= 60)
        .pipe(Effect.timeout("10 seconds"))
      yield* first.destroy
      const seen = [...first.events].map((e) => ({ id: e.id!, event: e.event }))
      expect(yield* harness.registry.running).toEqual(["s-resume"])
      const rest = yield* Chunked.request({
        port: harness.port,
        method: "GET",
        path: "/api/sessions/s-resume/events",
        headers: { ...Harness.alice, "last-event-id": String(seen.at(-1)!.id) }
      }).pipe(Effect.timeout("10 seconds"))
      expect(rest.frames.length).toBeGreaterThan(0)
      expectEveryEventOnceInOrder([...seen, ...rest.frames])
      expect(rest.chunks).toBeLessThan(rest.frames.length / 4)
    })
  )
})
