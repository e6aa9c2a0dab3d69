import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, FastCheck as fc, Layer, Ref, Schema, Stream, Supervisor, TestClock } from "effect"
import { Agent, AgentRun, CancelReason, CurrentRun, Message, StagedWrites, Subtask, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

interface Work {
  readonly delayMillis: number
  readonly writes: number
  readonly subtasks: ReadonlyArray<Work>
  readonly joinSubtasks: boolean
}

const Work: Schema.Schema<Work> = Schema.Struct({
  delayMillis: Schema.Number,
  writes: Schema.Number,
  subtasks: Schema.Array(Schema.suspend(() => Work)),
  joinSubtasks: Schema.Boolean
}).annotations({ identifier: "Work" })

const leaf = fc.record({
  delayMillis: fc.integer({ min: 0, max: 2000 }),
  writes: fc.integer({ min: 0, max: 3 }),
  subtasks: fc.constant<ReadonlyArray<Work>>([]),
  joinSubtasks: fc.boolean()
})
const work: fc.Arbitrary<Work> = fc.record({
  delayMillis: fc.integer({ min: 0, max: 2000 }),
  writes: fc.integer({ min: 0, max: 3 }),
  subtasks: fc.array(
    fc.record({
      delayMillis: fc.integer({ min: 0, max: 2000 }),
      writes: fc.integer({ min: 0, max: 3 }),
      subtasks: fc.array(leaf, { maxLength: 2 }),
      joinSubtasks: fc.boolean()
    }),
    { maxLength: 2 }
  ),
  joinSubtasks: fc.boolean()
})

/** A random run: turns of tool fan-out, then a streamed answer, and maybe an interrupt at some instant. */
const shape = fc.record({
  turns: fc.array(fc.array(work, { minLength: 1, maxLength: 3 }), { maxLength: 3 }),
  answerChunks: fc.integer({ min: 1, max: 5 }),
  chunkDelayMillis: fc.integer({ min: 0, max: 300 }),
  interruptAtMillis: fc.option(fc.integer({ min: 0, max: 6000 }), { nil: undefined })
})

const writesOf = (w: Work): number => w.writes + w.subtasks.reduce((sum, s) => sum + writesOf(s), 0)

describe.each(ScriptedModel.deliveries)("interruption invariants (property), model delivery %s", (delivery) => {
  it.effect.prop(
    "for any run shape and interrupt instant: nothing left running, every finalizer once, writes all-or-nothing",
    [shape],
    ([s]) =>
      Effect.gen(function* () {
        const started = yield* Ref.make(0)
        const finalized = yield* Ref.make(0)
        const keys = yield* Ref.make(0)
        const perform = (w: Work): Effect.Effect<void, StagedWrites.StagedWriteError, CurrentRun.CurrentRun> =>
          Effect.acquireUseRelease(
            Ref.update(started, (n) => n + 1),
            () =>
              Effect.gen(function* () {
                const spawned = yield* Effect.forEach(w.subtasks, (sub) => Subtask.spawn("sub", perform(sub)))
                for (let i = 0; i < w.writes; i++) {
                  const key = yield* Ref.getAndUpdate(keys, (n) => n + 1)
                  yield* AgentRun.stage(StagedWrites.upsert("w", String(key), i))
                  yield* Effect.sleep(w.delayMillis / (w.writes + 1))
                }
                yield* Effect.sleep(w.delayMillis / (w.writes + 1))
                if (w.joinSubtasks) yield* Effect.forEach(spawned, Subtask.join, { discard: true })
              }),
            () => Ref.update(finalized, (n) => n + 1)
          )
        const tool = Tool.make({
          name: "work",
          description: "Does work",
          input: Work,
          output: Schema.String,
          handler: (w) => Effect.as(perform(w), "done")
        })
        const script: Array<ScriptedModel.Turn> = [
          ...s.turns.map((calls) => calls.map((call) => ScriptedModel.toolUse("work", call))),
          ScriptedModel.text("the answer is here", { chunks: s.answerChunks, delay: `${s.chunkDelayMillis} millis` })
        ]
        const supervisor = yield* Supervisor.track
        const layer = Layer.mergeAll(ScriptedModel.layer(script, { delivery }), StagedWrites.layerMemory)
        yield* Effect.gen(function* () {
          const run = yield* AgentRun.start(Agent.make({ name: "prop", tools: [tool], maxTurns: 5 }), "go", {
            onLeak: "die"
          }).pipe(Effect.supervised(supervisor))
          const events = yield* Effect.fork(Stream.runCollect(run.events))
          if (s.interruptAtMillis !== undefined) {
            yield* TestClock.adjust(s.interruptAtMillis)
            yield* run.cancel(new CancelReason.UserAbort())
          } else {
            yield* TestClock.adjust("1 hour")
          }
          const outcome = yield* run.outcome
          const exit = yield* Fiber.await(yield* run.fiber)

          // No fiber of the run tree is left, and every acquired resource was released exactly once.
          const alive = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
          expect(alive).toHaveLength(0)
          expect(yield* Ref.get(finalized)).toBe(yield* Ref.get(started))
          const recorder = yield* ScriptedModel.ScriptedModel
          expect(yield* recorder.openStreams).toBe(0)

          // Writes are all-or-nothing.
          const snapshot = yield* Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)
          const committedWrites = snapshot.get("w")?.size ?? 0
          if (outcome._tag === "Completed") {
            expect(committedWrites).toBe(s.turns.flat().reduce((sum, w) => sum + writesOf(w), 0))
            expect(Exit.isSuccess(exit)).toBe(true)
          } else {
            expect(outcome._tag).toBe("Cancelled")
            expect(committedWrites).toBe(0)
            expect(Exit.isInterrupted(exit)).toBe(true)
            if (s.interruptAtMillis === undefined) throw new Error("a run nobody interrupted was cancelled")
          }

          // Every subtask ended before the writes were committed or rolled back.
          const tags = Chunk.toReadonlyArray(yield* Fiber.join(events)).map((event) => event._tag)
          const settledAt = Math.max(tags.indexOf("RolledBack"), tags.indexOf("RunCompleted"))
          expect(tags.filter((tag) => tag === "SubtaskEnded").length).toBe(
            tags.filter((tag) => tag === "SubtaskStarted").length
          )
          expect(tags.lastIndexOf("SubtaskEnded")).toBeLessThan(settledAt)
          expect(tags.lastIndexOf("ToolInterrupted")).toBeLessThan(settledAt)

          // The transcript stays valid and the ledger balances.
          expect(Message.unansweredToolUses(outcome.transcript)).toEqual([])
          const ledger = yield* run.tokens
          expect(ledger.inFlight).toBe(0)
          expect(ledger.reserved).toBe(ledger.settled + ledger.released)
        }).pipe(Effect.scoped, Effect.provide(layer))
      }),
    { fastCheck: { numRuns: 100 } }
  )
})
