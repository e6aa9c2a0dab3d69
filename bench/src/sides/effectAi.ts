/**
 * `@effect/ai` with `@effect/ai-anthropic`, as its docs show: `AnthropicClient.layer` over
 * `NodeHttpClient.layerUndici`, `AnthropicLanguageModel.layer` for the model, `LanguageModel.streamText` run on a
 * fiber and cancelled by interrupting it; tools made with `Tool.make` and a `Toolkit` whose handlers come from
 * `toolkit.toLayer`, the turns kept by a `Chat`, which resolves the tool calls of each turn; the loop goes on
 * while a turn finishes with `tool-calls`.
 */
import { Chat, LanguageModel, Tool, Toolkit } from "@effect/ai"
import type { Prompt } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Fiber, Layer, ManagedRuntime, Redacted, Schema, Stream } from "effect"
import { echoTool, maxTokens, model, prompt } from "./common.js"
import type { Client, Side } from "./Side.js"

const Echo = Tool.make(echoTool.name, {
  description: echoTool.description,
  parameters: { text: Schema.String },
  success: Schema.String
})

const EchoToolkit = Toolkit.make(Echo)

const EchoHandlers = EchoToolkit.toLayer({ [echoTool.name]: ({ text }) => Effect.succeed(text) })

/** The language model for the fake at `url`. */
export const layer = (url: string) =>
  AnthropicLanguageModel.layer({ model, config: { max_tokens: maxTokens } }).pipe(
    Layer.provide(AnthropicClient.layer({ apiKey: Redacted.make("bench"), apiUrl: url })),
    Layer.provide(NodeHttpClient.layerUndici)
  )

/** One streamed answer to "hi", drained. */
export const streamOnce = LanguageModel.streamText({ prompt }).pipe(Stream.runDrain)

const toolRun = Effect.gen(function* () {
  const chat = yield* Chat.empty
  let input: Prompt.RawInput = prompt
  for (let turn = 0; turn < 10; turn++) {
    let finish: string | undefined
    yield* chat
      .streamText({ prompt: input, toolkit: EchoToolkit })
      .pipe(Stream.runForEach((part) => Effect.sync(() => void (part.type === "finish" && (finish = part.reason)))))
    if (finish !== "tool-calls") return
    input = []
  }
})

export const side: Side = {
  key: "effectAi",
  label: "@effect/ai",
  connect: async (url): Promise<Client> => {
    const runtime = ManagedRuntime.make(Layer.merge(layer(url), EchoHandlers))
    await runtime.runtime()
    return {
      stream: () => {
        const fiber = runtime.runFork(streamOnce)
        return {
          abort: () => void runtime.runFork(Fiber.interrupt(fiber)),
          settled: () => runtime.runPromise(Fiber.await(fiber))
        }
      },
      toolRun: () => runtime.runPromise(toolRun),
      close: () => runtime.dispose()
    }
  }
}
