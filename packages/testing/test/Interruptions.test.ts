import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Subtask, Tool } from "@tether/core"
import { Interruptions, ScriptedModel } from "@tether/testing"

const book = Tool.make({
  name: "book",
  description: "Books a table",
  input: Schema.Struct({ seats: Schema.Number }),
  output: Schema.String,
  handler: ({ seats }) =>
    Interruptions.guard(
      Effect.gen(function* () {
        yield* AgentRun.stage(StagedWrites.upsert("bookings", "b-1", { seats }))
        yield* Subtask.spawn("confirm", Interruptions.guard(Effect.sleep("2 seconds")))
        yield* Effect.sleep("1 second")
        yield* AgentRun.stage(StagedWrites.upsert("bookings", "b-2", { seats }))
        return "booked"
      })
    )
})

const script: ScriptedModel.Script = [
  [ScriptedModel.toolUse("book", { seats: 2 }), ScriptedModel.toolUse("book", { seats: 4 })],
  ScriptedModel.text("Booked both tables.", { chunks: 4, delay: "200 millis" })
]

describe("Interruptions.check", () => {
  it.effect("passes for an agent that stops cleanly, at every event and at random instants", () =>
    Effect.gen(function* () {
      const report = yield* Interruptions.check({
        agent: Agent.make({ name: "host", tools: [book] }),
        input: "book",
        script,
        randomInstants: 10
      })
      expect(report.points).toBeGreaterThan(20)
      expect(report.cancelled).toBeGreaterThan(10)
    })
  )

  it.effect("finds the interrupt point where a tool leaks a daemon fiber", () =>
    Effect.gen(function* () {
      const leaky = Tool.make({
        name: "book",
        description: "Books a table, badly",
        input: Schema.Struct({ seats: Schema.Number }),
        output: Schema.String,
        handler: () =>
          Effect.gen(function* () {
            // A daemon escapes the run's scope: exactly what Tether forbids.
            yield* Effect.forkDaemon(Interruptions.guard(Effect.sleep("10 hours")))
            yield* Effect.sleep("1 second")
            return "booked"
          })
      })
      const error = yield* Effect.flip(
        Interruptions.check({ agent: Agent.make({ name: "host", tools: [leaky] }), input: "book", script })
      )
      expect(error._tag).toBe("InterruptionCheckError")
      expect(error.violations.join("\n")).toMatch(/fiber\(s\) of the run still alive|released/)
      expect(error.message).toMatch(/events of that run/)
    })
  )
})
