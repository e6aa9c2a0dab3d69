/**
 * Vercel's AI SDK (`ai`) with `@ai-sdk/anthropic`, as its docs show: `streamText` with an `abortSignal`, its text
 * read from `textStream`; tools made with `tool()` and a Zod input schema, the loop run by `streamText` itself
 * (`stopWhen: stepCountIs(n)`).
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { stepCountIs, streamText, tool } from "ai"
import { z } from "zod"
import { echoTool, maxTokens, model, prompt, settle } from "./common.js"
import type { Client, Side } from "./Side.js"

const tools = {
  [echoTool.name]: tool({
    description: echoTool.description,
    inputSchema: z.object({ text: z.string() }),
    execute: async ({ text }) => text
  })
}

/** Reads a result's text to its end (or its abort). */
export const drain = async (textStream: AsyncIterable<string>): Promise<string> => {
  let text = ""
  for await (const delta of textStream) text += delta
  return text
}

export const provider = (url: string) => createAnthropic({ baseURL: `${url}/v1`, apiKey: "bench" })

export const side: Side = {
  key: "vercel",
  label: "Vercel ai",
  connect: async (url): Promise<Client> => {
    const anthropic = provider(url)
    const settings = { model: anthropic(model), maxOutputTokens: maxTokens, maxRetries: 0 }
    return {
      stream: () => {
        const controller = new AbortController()
        const result = streamText({ ...settings, prompt, abortSignal: controller.signal })
        const done = settle(drain(result.textStream))
        return { abort: () => controller.abort(), settled: () => done }
      },
      toolRun: () => drain(streamText({ ...settings, prompt, tools, stopWhen: stepCountIs(10) }).textStream),
      close: async () => {}
    }
  }
}
