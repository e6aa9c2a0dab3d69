import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, CancelReason, Tool } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Deferred, Effect, Schema } from "effect"
import { performance } from "node:perf_hooks"
import { AnthropicModel } from "../src/index.js"
import { apiKey, firstAbortLatency } from "./helpers.js"

/** The real model against the fake server, for whole runs. */
const modelLayer = (fake: FakeAnthropic.Service) =>
  AnthropicModel.layer({ apiKey, baseURL: fake.url, retryBaseDelay: "10 millis" })

describe("AgentRun on AnthropicModel", () => {
  it.scopedLive("interrupting a run during a tool call between two turns sends no further request", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.toolUse("slow_lookup", { query: "x" }, { preamble: "Looking it up." }),
        FakeAnthropic.text("This turn must never be requested.")
      ])
      const toolStarted = yield* Deferred.make<void>()
      const slowLookup = Tool.make({
        name: "slow_lookup",
        description: "A lookup that takes a while",
        input: Schema.Struct({ query: Schema.String }),
        output: Schema.String,
        handler: () => Effect.zipRight(Deferred.succeed(toolStarted, undefined), Effect.as(Effect.never, "never"))
      })
      const agent = Agent.make({ name: "assistant", tools: [slowLookup] })
      const run = yield* AgentRun.start(agent, "Look up x").pipe(Effect.provide(modelLayer(fake)))
      yield* Deferred.await(toolStarted).pipe(Effect.timeout("5 seconds"))
      const [first] = yield* fake.requests
      expect(first?.isFinished).toBe(true)

      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome._tag).toBe("Cancelled")
      yield* Effect.sleep("300 millis")
      expect(yield* fake.requestCount).toBe(1)
      expect(yield* fake.inFlight).toBe(0)
    })
  )

  it.scopedLive("a sub-agent's stream inside a tool is closed when the parent run is interrupted", () =>
    Effect.gen(function* () {
      yield* firstAbortLatency // pay the process's one-time abort warm-up before measuring
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.toolUse("delegate", { topic: "tides" }),
        FakeAnthropic.text(["The ", "moon ", "pulls ", "the ", "sea."], { interval: 1000 }),
        FakeAnthropic.text("This turn must never be requested.")
      ])
      const researcher = Agent.make({ name: "researcher" })
      const delegate = Tool.make({
        name: "delegate",
        description: "Hands a topic to a researcher",
        input: Schema.Struct({ topic: Schema.String }),
        output: Schema.String,
        handler: ({ topic }) => Effect.map(AgentRun.run(researcher, `Research ${topic}`), (result) => result.text)
      })
      const agent = Agent.make({ name: "lead", tools: [delegate] })
      const run = yield* AgentRun.start(agent, "Explain tides").pipe(Effect.provide(modelLayer(fake)))
      yield* fake.awaitTokens(1, 2).pipe(Effect.timeout("5 seconds"))
      yield* Effect.sleep("20 millis")

      const interruptedAt = performance.now()
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      const record = yield* fake.awaitEnded(1).pipe(Effect.timeout("2 seconds"))
      const closeLatency = (record.closedAt ?? Infinity) - interruptedAt
      console.log(`[sub-agent] the sub-agent's stream closed ${closeLatency.toFixed(1)} ms after the parent's cancel`)
      expect(outcome._tag).toBe("Cancelled")
      expect(record.isFinished).toBe(false)
      expect(closeLatency).toBeLessThan(250)
      yield* Effect.sleep("1200 millis") // past the moment the next token was due
      const [, after] = yield* fake.requests
      expect(FakeAnthropic.tokensWrittenAfter(after!, interruptedAt)).toBe(0)
      expect(yield* fake.requestCount).toBe(2)
      expect(yield* fake.inFlight).toBe(0)
    })
  )

  it.scopedLive(
    "a server reporting a negative input_tokens cannot lift the budget: the run stops once 2 000 streamed",
    () =>
      Effect.gen(function* () {
        const chunks = Array.from({ length: 100 }, () => "x".repeat(400)) // 100 tokens each, as the ledger estimates
        const fake = yield* FakeAnthropic.make([
          FakeAnthropic.text(chunks, { inputTokens: -999_999_999, outputTokens: -5, interval: 5 })
        ])
        const run = yield* AgentRun.start(Agent.make({ name: "a", maxTokens: 4096 }), "talk", {
          tokenBudget: 2000
        }).pipe(Effect.provide(modelLayer(fake)))
        const outcome = yield* run.outcome.pipe(Effect.timeout("10 seconds"))
        expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "BudgetExceeded", ceiling: 2000 } })
        const ledger = yield* run.tokens
        expect(ledger.used).toBeGreaterThan(2000)
        expect(ledger.used).toBeLessThanOrEqual(2000 + 100)
        expect(ledger.tally.reportedInput).toBe(0) // the negative figure was ignored; the input estimate stands in
        const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
        expect(record.isFinished).toBe(false)
        expect(record.tokensWritten).toBeLessThan(100)
      })
  )
})
