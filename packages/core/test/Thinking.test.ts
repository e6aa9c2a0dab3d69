import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schema, TestClock } from "effect"
import { Agent, AgentRun, CancelReason, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const echo = Tool.make({
  name: "echo",
  description: "Echoes",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.succeed(text)
})

describe("thinking in the transcript", () => {
  it.effect("a signed thinking block opens its assistant message, and goes back to the model in the next turn", () =>
    Effect.gen(function* () {
      const agent = Agent.make({ name: "a", tools: [echo] })
      const result = yield* AgentRun.run(agent, "hi")
      const thinking = { type: "thinking", thinking: "Echo it.", signature: "sig-a" }
      expect(result.transcript[1]?.content).toEqual([thinking, expect.objectContaining({ type: "tool_use" })])
      const requests = yield* Effect.flatMap(ScriptedModel.ScriptedModel, (recorder) => recorder.requests)
      expect(requests[1]?.messages[1]?.content[0]).toEqual(thinking)
      expect(result.transcript[3]?.content).toEqual([{ type: "text", text: "Echoed." }])
    }).pipe(
      Effect.provide(
        ScriptedModel.layer([
          [ScriptedModel.thinking("Echo it.", { signature: "sig-a" }), ScriptedModel.toolUse("echo", { text: "x" })],
          ScriptedModel.text("Echoed.")
        ])
      )
    )
  )

  it.scoped("a run cancelled when only thinking had streamed keeps no assistant message of thinking alone", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "hi")
      yield* TestClock.adjust("1 second")
      const outcome = yield* Effect.fork(run.cancel(new CancelReason.UserAbort()))
      const { transcript } = yield* Fiber.join(outcome)
      expect(transcript.map((m) => m.role)).toEqual(["user"])
    }).pipe(
      Effect.provide(ScriptedModel.layer([[ScriptedModel.thinking("Let me think."), ScriptedModel.delay("1 minute")]]))
    )
  )
})
