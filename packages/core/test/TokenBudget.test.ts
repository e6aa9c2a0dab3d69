import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Ref, Stream, TestClock } from "effect"
import { Agent, AgentRun, CancelReason, StagedWrites, TokenBudget } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

describe("TokenBudget", () => {
  it.effect("clamps max_tokens to what is left and refuses a call that cannot start", () =>
    Effect.gen(function* () {
      const ledger = yield* TokenBudget.make({ ceiling: 1000 })
      const first = yield* ledger.reserve({ estimatedInput: 100, maxTokens: 4096 })
      expect(first.maxTokens).toBe(900)
      const refused = yield* Effect.flip(ledger.reserve({ estimatedInput: 10, maxTokens: 10 }))
      expect(refused._tag).toBe("BudgetExhaustedError")
      yield* first.settle({ inputTokens: 90, outputTokens: 10 })
      const second = yield* ledger.reserve({ estimatedInput: 10, maxTokens: 4096 })
      expect(second.maxTokens).toBe(890)
      yield* second.settle({ inputTokens: 10, outputTokens: 0, streamedTokens: 3 })
      const snapshot = yield* ledger.snapshot
      expect(snapshot).toMatchObject({ settled: 113, inFlight: 0, estimated: true })
      expect(snapshot.tally).toEqual({ used: 113, reportedInput: 100, reportedOutput: 10, estimated: 3 })
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

describe("what a provider reports is checked, not trusted", () => {
  it.effect("negative, NaN, fractional and shrinking figures never lower what the ledger counts", () =>
    Effect.gen(function* () {
      const ledger = yield* TokenBudget.make({ ceiling: 10_000 })
      const call = yield* ledger.reserve({ estimatedInput: 100, maxTokens: 1000 })
      call.unsafeObserve({ inputTokens: -999_999_999, outputTokens: Number.NaN })
      // The model answered without a usable input figure: its input estimate stands in, marked estimated.
      expect(ledger.unsafeSnapshot().tally).toEqual({ used: 100, reportedInput: 0, reportedOutput: 0, estimated: 100 })
      call.unsafeObserve({ inputTokens: 80.2, outputTokens: 10, streamedTokens: 12 })
      expect(ledger.unsafeSnapshot().tally).toEqual({ used: 112, reportedInput: 81, reportedOutput: 10, estimated: 21 })
      call.unsafeObserve({ inputTokens: 5, outputTokens: 3, streamedTokens: 12 })
      expect(ledger.unsafeSnapshot().used).toBe(112)
      yield* call.settle({ inputTokens: 90, outputTokens: 40, streamedTokens: 30 })
      expect(ledger.unsafeSnapshot().tally).toEqual({ used: 140, reportedInput: 90, reportedOutput: 40, estimated: 10 })
    })
  )

  it.effect("a call that ends before its model answered costs nothing", () =>
    Effect.gen(function* () {
      const ledger = yield* TokenBudget.make({ ceiling: 1000 })
      const call = yield* ledger.reserve({ estimatedInput: 94, maxTokens: 500 })
      expect(ledger.unsafeSnapshot()).toMatchObject({ used: 0, reservedInFlight: 594 })
      yield* call.settle({ streamedTokens: 0 })
      expect(ledger.unsafeSnapshot()).toMatchObject({ used: 0, tally: TokenBudget.emptyTally, reservedInFlight: 0 })
    })
  )
})

describe("a run's token figures", () => {
  it.effect(
    "a 2 000-token run fed a negative usage is cancelled with BudgetExceeded once what streamed crosses it",
    () =>
      Effect.gen(function* () {
        const run = yield* AgentRun.start(Agent.make({ name: "talker", maxTokens: 4096 }), "talk", {
          tokenBudget: 2000
        })
        yield* TestClock.adjust("1 minute")
        const outcome = yield* run.outcome
        expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "BudgetExceeded", ceiling: 2000 } })
        const ledger = yield* run.tokens
        // Each chunk is 100 tokens: the ledger tripped on the first past the ceiling.
        expect(ledger.used).toBeGreaterThan(2000)
        expect(ledger.used).toBeLessThanOrEqual(2000 + 100)
        expect(outcome._tag === "Cancelled" && outcome.tokensUsed).toBe(ledger.used)
        expect(ledger.tally.reportedInput).toBe(0)
        expect(ledger.tally.estimated).toBe(ledger.used)
        const recorder = yield* ScriptedModel.ScriptedModel
        expect(yield* recorder.chunksEmitted).toBeLessThan(100)
      }).pipe(
        Effect.scoped,
        Effect.provide(
          models(
            [
              [
                ScriptedModel.usage(-999_999_999, -5),
                ...ScriptedModel.text("x".repeat(40_000), { chunks: 100, delay: "100 millis" })
              ]
            ],
            { ignoreMaxTokens: true }
          )
        )
      )
  )

  it.effect("a run cancelled before its model answered used 0 tokens", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "hello")
      yield* TestClock.adjust("1 second")
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome).toMatchObject({
        _tag: "Cancelled",
        tokensUsed: 0,
        tokensEstimated: false,
        tally: TokenBudget.emptyTally
      })
    }).pipe(
      Effect.scoped,
      Effect.provide(
        models([[ScriptedModel.delay("10 seconds"), ScriptedModel.usage(50, 1), ScriptedModel.text("late")[0]!]])
      )
    )
  )

  it.effect("a turn that does not fit says what it needed, in figures that add up", () =>
    Effect.gen(function* () {
      const agent = Agent.make({ name: "a", system: "s".repeat(400) })
      const run = yield* AgentRun.start(agent, "hi", { tokenBudget: 60 })
      yield* TestClock.adjust("1 second")
      const outcome = yield* run.outcome
      if (outcome._tag !== "Cancelled" || outcome.reason._tag !== "BudgetExceeded") {
        return expect.unreachable(`expected a BudgetExceeded cancel, got ${outcome._tag}`)
      }
      const { ceiling, needed, used } = outcome.reason
      expect({ ceiling, used }).toEqual({ ceiling: 60, used: 0 })
      expect(needed).toBeGreaterThan(60)
      expect(CancelReason.describe(outcome.reason)).toBe(
        `the token budget of 60 has no room for the next turn: 0 used, and the turn needs ${needed} (its estimated input and one output token)`
      )
      expect(outcome.tokensUsed).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(models([ScriptedModel.text("never")])))
  )

  it.effect("each TokensUsed event and the outcome say what their figures count, and they add up", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "hello", { tokenBudget: 5000 })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("10 seconds")
      const outcome = yield* run.outcome
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      const usages = all.filter((event) => event._tag === "TokensUsed")
      expect(usages.length).toBeGreaterThan(1)
      for (const event of usages) {
        const { estimated, reportedInput, reportedOutput, used } = event.tally
        expect(event.tokens).toBe(used)
        expect(reportedInput + reportedOutput + estimated).toBe(used)
        expect(event.tokens + event.reservedInFlight).toBeLessThanOrEqual(5000)
      }
      expect(usages[0]!.reservedInFlight).toBeGreaterThan(0)
      expect(usages.at(-1)!.reservedInFlight).toBe(0)
      if (outcome._tag !== "Completed") return expect.unreachable(outcome._tag)
      expect(outcome.tally.used).toBe(outcome.tokensUsed)
      expect(outcome.tally.estimated).toBe(0)
      expect(outcome.tally.reportedInput).toBeGreaterThan(0)
      const completed = all.at(-1)
      expect(completed).toMatchObject({ _tag: "RunCompleted", tokensUsed: outcome.tokensUsed, tally: outcome.tally })
    }).pipe(Effect.scoped, Effect.provide(models([ScriptedModel.text("Hello there, how are you?", { chunks: 4 })])))
  )
})
