import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema, TestClock } from "effect"
import { Agent, AgentRun, CancelReason, LanguageModel, StagedWrites, Tool } from "@tether/core"
import { AnthropicModel } from "@tether/anthropic"
import { FakeAnthropic, ScriptedModel } from "@tether/testing"

const counter = Agent.make({ name: "counter", system: "Count slowly." })

describe("a cancelled run", () => {
  // A real socket: the fake Anthropic server records each request, when it closed, and each token it wrote.
  it.scopedLive("closes the model's socket at once, and the model was sent what the agent said", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("one two three four five", { interval: 1000 })])
      const model = yield* AnthropicModel.make({ apiKey: "test-key", baseURL: fake.url })
      const run = yield* AgentRun.run(counter, "Count to five").pipe(
        Effect.provideService(LanguageModel.LanguageModel, model),
        Effect.fork
      )
      yield* fake.awaitTokens(0, 2)
      const cancelledAt = performance.now()
      yield* Fiber.interrupt(run)
      const record = yield* fake.awaitEnded(0)
      expect(record.request?.system).toBe("Count slowly.")
      expect(record.request?.messages).toEqual([{ role: "user", content: [{ type: "text", text: "Count to five" }] }])
      expect(record.closedAt).toBeDefined() // the client closed the connection before the answer ended
      expect(FakeAnthropic.tokensWrittenAfter(record, cancelledAt)).toBe(0)
    })
  )

  // The scripted model on the TestClock, and the in-memory store's snapshot: what committed, and how often.
  it.scoped("rolls back what its tools staged", () =>
    Effect.gen(function* () {
      const order = Tool.make({
        name: "order",
        description: "Orders an item",
        input: Schema.Struct({ item: Schema.String }),
        output: Schema.String,
        handler: ({ item }) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", item, { item })), "ordered")
      })
      const model = ScriptedModel.layer([
        [ScriptedModel.toolUse("order", { item: "lamp" })],
        ScriptedModel.text("Ordered a lamp.", { chunks: 3, delay: "1 second" })
      ])
      const program = Effect.gen(function* () {
        const run = yield* AgentRun.start(Agent.make({ name: "shop", tools: [order] }), "A lamp, please")
        yield* TestClock.adjust("1500 millis") // the order is staged, the answer half written
        const outcome = yield* run.cancel(new CancelReason.UserAbort())
        expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
        const store = yield* StagedWrites.MemoryStore
        expect((yield* store.snapshot).get("orders")).toBeUndefined()
        expect(yield* store.commits).toBe(0)
        const recorder = yield* ScriptedModel.ScriptedModel
        expect(yield* recorder.openStreams).toBe(0)
      })
      yield* program.pipe(Effect.provide(Layer.merge(model, StagedWrites.layerMemory)))
    })
  )
})
