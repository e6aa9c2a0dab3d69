/**
 * Scenario 4: turns with tool calls against a zero-latency fake. Tether's agent loop against a hand-written
 * loop on the raw SDK doing the same requests (stream, collect the tool call, run it, send its result).
 */
import type Anthropic from "@anthropic-ai/sdk"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, Tool } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { rawClient, rawParams } from "./setup.js"

const script = (request: FakeAnthropic.ScriptRequest): FakeAnthropic.Reply => {
  const last = request.body.messages.at(-1)
  const answered = typeof last?.content !== "string" && last?.content.some((block) => block.type === "tool_result")
  return answered ? FakeAnthropic.text("done") : FakeAnthropic.toolUse("echo", { text: "ping" })
}

const echo = Tool.make({
  name: "echo",
  description: "Echoes",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.succeed(text)
})

const rawRun = async (client: Anthropic) => {
  const tools = [
    {
      name: "echo",
      description: "Echoes",
      input_schema: { type: "object" as const, properties: { text: { type: "string" } } }
    }
  ]
  const messages: Array<Anthropic.MessageParam> = [{ role: "user", content: "hi" }]
  for (let turn = 0; turn < 10; turn++) {
    const stream = await client.messages.create({ ...rawParams, messages, tools, stream: true })
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

export interface OverheadResult {
  readonly turns: number
  readonly tetherMillis: number
  /** The same runs with tracing off (`Layer.setTracerEnabled(false)`): no spans at all. */
  readonly untracedMillis: number
  readonly rawMillis: number
}

export const overhead = async (turns: number): Promise<OverheadResult> => {
  const fake = await FakeAnthropic.start(script)
  const client = rawClient(fake)
  const model = AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 })
  const runtime = ManagedRuntime.make(Layer.mergeAll(model, Logger.minimumLogLevel(LogLevel.Warning)))
  const untraced = ManagedRuntime.make(
    Layer.mergeAll(model, Logger.minimumLogLevel(LogLevel.Warning), Layer.setTracerEnabled(false))
  )
  const agent = Agent.make({ name: "echoer", tools: [echo] })
  const sides = {
    raw: () => rawRun(client),
    tether: () => runtime.runPromise(AgentRun.run(agent, "hi")),
    untraced: () => untraced.runPromise(AgentRun.run(agent, "hi"))
  }
  const millis = { raw: 0, tether: 0, untraced: 0 }
  const runs = Math.ceil(turns / 2)
  try {
    // Warm every path up first (JIT, sockets).
    for (let i = 0; i < 20; i++) for (const side of Object.values(sides)) await side()
    // Interleave blocks of runs so every side meets the same noise.
    const block = 25
    for (let done = 0; done < runs; done += block) {
      const n = Math.min(block, runs - done)
      for (const [name, side] of Object.entries(sides) as Array<[keyof typeof sides, () => Promise<unknown>]>) {
        const t0 = performance.now()
        for (let i = 0; i < n; i++) await side()
        millis[name] += performance.now() - t0
      }
    }
    return { turns: runs * 2, tetherMillis: millis.tether, untracedMillis: millis.untraced, rawMillis: millis.raw }
  } finally {
    await runtime.dispose()
    await untraced.dispose()
    await fake.close()
  }
}
