import { Console, Effect } from "effect"
import { Agent, AgentRun } from "@tether/core"
import { AnthropicModel } from "@tether/anthropic"

const assistant = Agent.make({ name: "assistant", system: "Answer in one short sentence." })

AgentRun.run(assistant, "What is a fiber?").pipe(
  Effect.flatMap((result) => Console.log(result.text)),
  // ANTHROPIC_API_KEY (required), ANTHROPIC_MODEL, ANTHROPIC_BASE_URL, ANTHROPIC_MAX_RETRIES...
  Effect.provide(AnthropicModel.layerConfig),
  Effect.catchTag("MissingApiKeyError", (error) => Console.error(error.message)),
  Effect.runPromise
)
