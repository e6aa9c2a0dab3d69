/**
 * `AnthropicModel` alone on the `node:http` fetch: each stream is one `runTurn` on a fiber of its own, no agent run,
 * cancelled by its `AbortSignal` and an interrupt (as a run does). Not in any scenario's list: run it by its key
 * (`scaleMain.mjs 2000 modelOnly`, `profileMain.mjs heap modelOnly 500 <dir>`) to see what `@tether/anthropic`
 * holds per live turn against `rawNodeHttp`.
 */
import { Effect, Fiber } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Message } from "@tether/core"
import { nodeHttpFetch } from "../nodeHttpFetch.js"
import { prompt, maxTokens } from "./common.js"
import type { Client, Side } from "./Side.js"

export const side: Side = {
  key: "modelOnly",
  label: "model only",
  connect: async (url): Promise<Client> => {
    const model = Effect.runSync(
      AnthropicModel.make({ apiKey: "bench", baseURL: url, maxRetries: 0, fetch: nodeHttpFetch })
    )
    const messages = [Message.user(prompt)]
    return {
      stream: () => {
        const controller = new AbortController()
        const fiber = Effect.runFork(
          Effect.either(model.runTurn({ messages, tools: [], maxTokens, signal: controller.signal }, () => {}))
        )
        return {
          abort: () => {
            controller.abort()
            fiber.unsafeInterruptAsFork(fiber.id())
          },
          settled: () => Effect.runPromise(Fiber.await(fiber))
        }
      },
      close: async () => {}
    }
  }
}
