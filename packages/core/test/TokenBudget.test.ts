import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Ref, TestClock } from "effect"
import { Agent, AgentRun, StagedWrites, TokenBudget } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

describe("TokenBudget", () => {
  it.effect("clamps max_tokens to what is left and refuses a call that cannot start", () =>
    Effect.gen(function* () {
      const ledger = yield* TokenBudget.make({ ceiling: 1000 })
      const first = yield* ledger.reserve({ estimatedInput: 100, maxTokens: 4096 })
      expect(first.maxTokens).toBe(900)
      const refused = yield* Effect.flip(ledger.reserve({ estimatedInput: 10, maxTokens: 10 }))
      expect(refused._tag).toBe("BudgetExhaustedError")
      yield* first.settle({ inputTokens: 90, outputTokens: 10, estimated: false })
      const second = yield* ledger.reserve({ estimatedInput: 10, maxTokens: 4096 })
      expect(second.maxTokens).toBe(890)
      yield* second.settle({ inputTokens: 10, outputTokens: 0, estimated: true })
      const snapshot = yield* ledger.snapshot
      expect(snapshot).toMatchObject({ settled: 110, inFlight: 0, estimated: true })
      expect(snapshot.reserved).toBe(snapshot.settled + snapshot.released)
    })
  )

  it.effect("trips once when streamed usage crosses the ceiling", () =>
    Effect.gen(function* () {
      const trips = yield* Ref.make(0)
      const ledger = yield* TokenBudget.make({ ceiling: 100, onExceeded: () => Ref.update(trips, (n) => n + 1) })
      const reservation = yield* ledger.reserve({ estimatedInput: 10, maxTokens: 90 })
      yield* reservation.observe({ inputTokens: 10, outputTokens: 90 })
      expect(yield* Ref.get(trips)).toBe(0)
      yield* reservation.observe({ inputTokens: 10, outputTokens: 91 })
      yield* reservation.observe({ inputTokens: 10, outputTokens: 95 })
      expect(yield* Ref.get(trips)).toBe(1)
      expect((yield* ledger.snapshot).exceeded).toBe(true)
    })
  )

  it.effect(
    "unsafeObserve returns the snapshot once, on the call that crosses the ceiling, and leaves onExceeded alone",
    () =>
      Effect.gen(function* () {
        const trips = yield* Ref.make(0)
        const ledger = yield* TokenBudget.make({ ceiling: 100, onExceeded: () => Ref.update(trips, (n) => n + 1) })
        const reservation = yield* ledger.reserve({ estimatedInput: 10, maxTokens: 90 })
        expect(reservation.unsafeObserve({ inputTokens: 10, outputTokens: 90 })).toBeUndefined()
        expect(reservation.unsafeObserve({ inputTokens: 10, outputTokens: 91 })).toMatchObject({
          used: 101,
          exceeded: true
        })
        expect(reservation.unsafeObserve({ inputTokens: 10, outputTokens: 95 })).toBeUndefined()
        expect(yield* Ref.get(trips)).toBe(0)
        expect(ledger.unsafeSnapshot()).toEqual(yield* ledger.snapshot)
      })
  )
})

const models = (script: ScriptedModel.Script, options?: ScriptedModel.Options) =>
  Layer.mergeAll(ScriptedModel.layer(script, options), StagedWrites.layerMemory)

describe("a run's token budget", () => {
  it.effect("a stream that would exceed the ceiling stops within one chunk, with reason BudgetExceeded", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "talker", maxTokens: 4096 }), "talk", { tokenBudget: 300 })
      yield* TestClock.adjust("10 seconds")
      const outcome = yield* run.outcome
      expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "BudgetExceeded", ceiling: 300 } })
      const recorder = yield* ScriptedModel.ScriptedModel
      const [request] = yield* recorder.requests
      expect(request!.maxTokens).toBeLessThan(300)
      const ledger = yield* run.tokens
      // Each chunk is 10 tokens: the ledger tripped on the first chunk past the ceiling and no further one was paid for.
      expect(ledger.used).toBeGreaterThan(300)
      expect(ledger.used).toBeLessThanOrEqual(300 + 10)
      expect(yield* recorder.chunksEmitted).toBeLessThan(100)
      expect(yield* recorder.openStreams).toBe(0)
      expect(ledger.reserved).toBe(ledger.settled + ledger.released)
    }).pipe(
      Effect.scoped,
      // This model ignores max_tokens, so only the ledger can stop it.
      Effect.provide(
        models([ScriptedModel.text("x".repeat(4000), { chunks: 100, delay: "10 millis" })], { ignoreMaxTokens: true })
      )
    )
  )

  it.effect("a well-behaved model is held under the ceiling by the clamped max_tokens alone", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(
        AgentRun.run(Agent.make({ name: "talker", maxTokens: 4096 }), "talk", { tokenBudget: 300 })
      )
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.text.length).toBeGreaterThan(0)
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.chunksEmitted).toBeLessThan(100)
    }).pipe(Effect.provide(models([ScriptedModel.text("x".repeat(4000), { chunks: 100, delay: "10 millis" })])))
  )

  it.effect("a turn that cannot be reserved cancels the run with BudgetExceeded before any request", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a", system: "s".repeat(4000) }), "hi", { tokenBudget: 500 })
      yield* TestClock.adjust("1 second")
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "BudgetExceeded" } })
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.requests).toHaveLength(0)
    }).pipe(Effect.scoped, Effect.provide(models([ScriptedModel.text("never")])))
  )
})
