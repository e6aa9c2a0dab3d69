/**
 * The smallest useful agent, bundled (effect external, minified) to measure what @tether/core adds to an
 * application: Agent, one Tool, AgentRun, and a LanguageModel stub in place of a provider.
 */
import { Effect, Layer, Schema } from "effect"
import { Agent, AgentRun, LanguageModel, Tool } from "@tether/core"

const echo = Tool.make({
  name: "echo",
  description: "Echoes its input",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.succeed(text)
})

const model = Layer.succeed(LanguageModel.LanguageModel, {
  runTurn: (_request, onEvents) =>
    Effect.sync(() =>
      onEvents([
        LanguageModel.ModelEvent.TextDelta({ text: "hello" }),
        LanguageModel.ModelEvent.Stop({ reason: "end_turn" })
      ])
    )
})

const agent = Agent.make({ name: "minimal", tools: [echo] })

export const main = Effect.scoped(Effect.flatMap(AgentRun.start(agent, "hi"), (run) => run.outcome)).pipe(
  Effect.provide(model)
)
