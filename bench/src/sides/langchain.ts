/**
 * LangChain's `@langchain/anthropic`, as its docs show: `ChatAnthropic.stream(input, { signal })`; tools made
 * with `tool()` and a Zod schema, bound with `bindTools`, the chunks of a turn gathered with `concat`, each tool call
 * run with `tool.invoke(toolCall)` (which answers a `ToolMessage`), until the model answers without tool calls.
 */
import { ChatAnthropic } from "@langchain/anthropic"
import { type AIMessageChunk, type BaseMessage, HumanMessage } from "@langchain/core/messages"
import { tool } from "@langchain/core/tools"
import { z } from "zod"
import { echoTool, maxTokens, model, prompt, settle } from "./common.js"
import type { Client, Side } from "./Side.js"

const echo = tool(async ({ text }: { text: string }) => text, {
  name: echoTool.name,
  description: echoTool.description,
  schema: z.object({ text: z.string() })
})

export const chatModel = (url: string) =>
  new ChatAnthropic({ model, apiKey: "bench", anthropicApiUrl: url, maxRetries: 0, maxTokens })

/** Reads a stream of chunks to its end (or its abort). */
export const drain = async (stream: AsyncIterable<AIMessageChunk>): Promise<void> => {
  for await (const _chunk of stream) {
    // drain
  }
}

const toolRun = async (withTools: ReturnType<ChatAnthropic["bindTools"]>): Promise<string> => {
  const messages: Array<BaseMessage> = [new HumanMessage(prompt)]
  for (let turn = 0; turn < 10; turn++) {
    let gathered: AIMessageChunk | undefined
    for await (const chunk of await withTools.stream(messages)) {
      gathered = gathered === undefined ? chunk : gathered.concat(chunk)
    }
    if (gathered === undefined) return ""
    messages.push(gathered)
    const calls = gathered.tool_calls ?? []
    if (calls.length === 0) return gathered.text
    for (const call of calls) messages.push(await echo.invoke(call))
  }
  return ""
}

export const side: Side = {
  key: "langchain",
  label: "LangChain",
  connect: async (url): Promise<Client> => {
    const chat = chatModel(url)
    const withTools = chat.bindTools([echo])
    return {
      stream: () => {
        const controller = new AbortController()
        const done = settle(chat.stream(prompt, { signal: controller.signal }).then(drain))
        return { abort: () => controller.abort(), settled: () => done }
      },
      toolRun: () => toolRun(withTools),
      close: async () => {}
    }
  }
}
