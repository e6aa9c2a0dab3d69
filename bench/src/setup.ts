import Anthropic from "@anthropic-ai/sdk"
import { AnthropicModel } from "@tether/anthropic"

export const rawClient = (fake: { readonly url: string }) =>
  new Anthropic({ apiKey: "bench", baseURL: fake.url, maxRetries: 0, logLevel: "off" })

export const rawParams = {
  model: AnthropicModel.defaultModel,
  max_tokens: 1024,
  messages: [{ role: "user" as const, content: "hi" }]
}

/** Streams a raw SDK request to its end or its abort, swallowing the abort. */
export const rawStream = async (client: Anthropic, signal: AbortSignal): Promise<void> => {
  try {
    const stream = await client.messages.create({ ...rawParams, stream: true }, { signal })
    for await (const _event of stream) {
      // drain
    }
  } catch {
    // aborted
  }
}
