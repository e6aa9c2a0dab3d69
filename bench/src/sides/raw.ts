/**
 * The floor: a hand-written loop on the Anthropic SDK, cancelled by an `AbortSignal`. `messages.create` with
 * `stream: true` is the SDK's lighter streaming call (its `messages.stream` helper also accumulates the message).
 */
import Anthropic from "@anthropic-ai/sdk"
import { nodeHttpFetch } from "../nodeHttpFetch.js"
import { echoTool, maxTokens, model, prompt } from "./common.js"
import type { Client, Side, Transport } from "./Side.js"

export const client = (url: string, transport: Transport = "fetch") =>
  new Anthropic({
    apiKey: "bench",
    baseURL: url,
    maxRetries: 0,
    logLevel: "off",
    ...(transport === "node:http" ? { fetch: nodeHttpFetch } : {})
  })

const params = { model, max_tokens: maxTokens, messages: [{ role: "user" as const, content: prompt }] }

/** Streams one request to its end or its abort, swallowing the abort. */
export const streamOnce = async (anthropic: Anthropic, signal: AbortSignal): Promise<void> => {
  try {
    const stream = await anthropic.messages.create({ ...params, stream: true }, { signal })
    for await (const _event of stream) {
      // drain
    }
  } catch {
    // aborted
  }
}

/** Each event of one streamed request, as the raw servers forward it. */
export const events = (anthropic: Anthropic, signal: AbortSignal) =>
  anthropic.messages.create({ ...params, stream: true }, { signal })

const tools: Array<Anthropic.Tool> = [
  {
    name: echoTool.name,
    description: echoTool.description,
    input_schema: { type: "object", properties: { text: { type: "string" } } }
  }
]

/** The agent loop by hand: stream a turn, collect its tool calls, run them, send their results, until text. */
export const toolRun = async (anthropic: Anthropic): Promise<string> => {
  const messages: Array<Anthropic.MessageParam> = [{ role: "user", content: prompt }]
  for (let turn = 0; turn < 10; turn++) {
    const stream = await anthropic.messages.create({ ...params, messages, tools, stream: true })
    const blocks: Array<Anthropic.ContentBlockParam> = []
    let json = ""
    let current: { id: string; name: string } | undefined
    let text = ""
    for await (const event of stream) {
      if (event.type === "content_block_start" && event.content_block.type === "tool_use") {
        current = { id: event.content_block.id, name: event.content_block.name }
        json = ""
      } else if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") {
        json += event.delta.partial_json
      } else if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        text += event.delta.text
      } else if (event.type === "content_block_stop" && current !== undefined) {
        blocks.push({ type: "tool_use", id: current.id, name: current.name, input: JSON.parse(json || "{}") })
        current = undefined
      }
    }
    if (text.length > 0) blocks.unshift({ type: "text", text })
    messages.push({ role: "assistant", content: blocks })
    const uses = blocks.filter((block): block is Anthropic.ToolUseBlockParam => block.type === "tool_use")
    if (uses.length === 0) return text
    messages.push({
      role: "user",
      content: uses.map((use) => ({
        type: "tool_result" as const,
        tool_use_id: use.id,
        content: (use.input as { text: string }).text
      }))
    })
  }
  return ""
}

export const side = (transport: Transport = "fetch"): Side => ({
  key: transport === "fetch" ? "raw" : "rawNodeHttp",
  label: transport === "fetch" ? "raw SDK loop" : "raw SDK on node:http",
  connect: async (url): Promise<Client> => {
    const anthropic = client(url, transport)
    return {
      stream: () => {
        const controller = new AbortController()
        const done = streamOnce(anthropic, controller.signal)
        return { abort: () => controller.abort(), settled: () => done }
      },
      toolRun: () => toolRun(anthropic),
      close: async () => {}
    }
  }
})
