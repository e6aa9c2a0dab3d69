import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import { RunEvent, TokenBudget } from "@tether/core"
import { make } from "../src/internal/events.js"
import { make as makeEvent } from "../src/internal/event.js"

const seqs = (events: Chunk.Chunk<RunEvent.RunEvent>) => Chunk.toReadonlyArray(events).map((event) => event.seq)

describe("a run's events", () => {
  it.effect("each reader gets every event from the first, those published before it read and after, in order", () =>
    Effect.gen(function* () {
      const events = yield* make("run_1", "chat")
      const text = (t: string) => events.publish((c) => makeEvent(RunEvent.TextDelta, c, { text: t }))
      text("a")
      text("b")
      const early = yield* Effect.fork(Stream.runCollect(events.stream()))
      const tail = yield* Effect.fork(Stream.runCollect(events.streamAfter(1)))
      yield* Effect.yieldNow()
      text("c")
      events.publish((c) =>
        makeEvent(RunEvent.RunCompleted, c, { text: "abc", tokensUsed: 0, tally: TokenBudget.emptyTally })
      )
      text("after the end")
      expect(seqs(yield* Fiber.join(early))).toEqual([1, 2, 3, 4])
      expect(seqs(yield* Fiber.join(tail))).toEqual([2, 3, 4])
      // A reader that comes after the end gets the log, and its stream ends with the terminal event...
      expect(seqs(yield* Stream.runCollect(events.stream()))).toEqual([1, 2, 3, 4])
      // ...even where it reads nothing: after the terminal event's seq, the stream is empty and ends.
      expect(seqs(yield* Stream.runCollect(events.streamAfter(4)))).toEqual([])
    })
  )
})
