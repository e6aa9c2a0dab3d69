import Anthropic from "@anthropic-ai/sdk"
import { Effect } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Message } from "@tether/core"
import type { LanguageModel } from "@tether/core"
import type { FakeAnthropic } from "@tether/testing"

export const rawClient = (fake: FakeAnthropic.Handle) =>
  new Anthropic({ apiKey: "bench", baseURL: fake.url, maxRetries: 0, logLevel: "off" })

export const tetherModel = (fake: FakeAnthropic.Handle): LanguageModel.Service =>
  Effect.runSync(AnthropicModel.make({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }))

export const turnRequest: LanguageModel.TurnRequest = { messages: [Message.user("hi")], tools: [], maxTokens: 1024 }

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

/** Resolves once request `index` of the fake has closed or finished, with its record. */
export const ended = (fake: FakeAnthropic.Handle, index: number) =>
  fake.waitUntil((state) => {
    const record = state.request(index)
    return record !== undefined && (record.closedAt !== undefined || record.isFinished) ? record : undefined
  })

export const tokensAtLeast = (fake: FakeAnthropic.Handle, index: number, count: number) =>
  fake.waitUntil((state) => ((state.request(index)?.tokensWritten ?? 0) >= count ? true : undefined))

/** Records `from` to `to` (exclusive) of the fake, read one by one (cheap inside a wait predicate). */
export const records = (state: FakeAnthropic.State, from: number, to: number): Array<FakeAnthropic.RecordedRequest> =>
  Array.from({ length: Math.max(0, to - from) }, (_, i) => state.request(from + i)!).filter((r) => r !== undefined)
