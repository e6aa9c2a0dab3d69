import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Schema, Stream, TestClock } from "effect"
import { Agent, AgentRun, CancelReason, LanguageModel, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const researcher = Agent.make({ name: "researcher", system: "You research." })

const delegate = Tool.make("delegate", {
  description: "Asks the researcher",
  input: Schema.Struct({ topic: Schema.String }),
  output: Schema.String,
  handler: ({ topic }) =>
    Effect.gen(function* () {
      yield* AgentRun.stage(StagedWrites.upsert("notes", topic, "pending"))
      const result = yield* Agent.run(researcher, `Research ${topic}`)
      return result.text
    })
})

const lead = Agent.make({ name: "lead", tools: [delegate] })

/** The lead delegates once; the researcher streams slowly. */
const script: ScriptedModel.Script = (request, index) =>
  request.system === "You research."
    ? ScriptedModel.text("finding ".repeat(20), { chunks: 20, delay: "1 second" })
    : index === 0
      ? [ScriptedModel.toolUse("delegate", { topic: "fibers" })]
      : ScriptedModel.text("Summary.")

const env = Layer.mergeAll(ScriptedModel.layer(script), StagedWrites.layerMemory)

describe("sub-agents", () => {
  it.effect("cancelling the parent closes the sub-agent's stream and rolls back the whole tree", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(lead, "go", { onLeak: "die" })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("3500 millis")
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.openStreams).toBe(0)
      expect(yield* recorder.requests).toHaveLength(2)
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      const fromResearcher = all.filter((event) => event.agent === "lead/researcher" && event._tag === "TextDelta")
      expect(fromResearcher).toHaveLength(3)
      expect(all.some((event) => event._tag === "ToolInterrupted")).toBe(true)
      expect((yield* Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)).size).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(env))
  )

  it.effect("a sub-agent draws from the parent's token budget", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(lead, "go", { tokenBudget: 600 })
      yield* TestClock.adjust("1 minute")
      expect((yield* run.outcome)._tag).toBe("Completed")
      const recorder = yield* ScriptedModel.ScriptedModel
      const [, researcherRequest] = yield* recorder.requests
      // On a ledger of its own the researcher could ask for everything but its input; on the shared one,
      // what the lead already spent is gone too.
      const ownInput = LanguageModel.estimateInputTokens(researcherRequest!)
      expect(researcherRequest!.maxTokens).toBeLessThan(600 - ownInput)
      const ledger = yield* run.tokens
      expect(ledger.used).toBeLessThanOrEqual(600)
      expect(ledger.reserved).toBe(ledger.settled + ledger.released)
    }).pipe(Effect.scoped, Effect.provide(env))
  )
})
