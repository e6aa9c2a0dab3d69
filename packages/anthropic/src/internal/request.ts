import type Anthropic from "@anthropic-ai/sdk"
import type { LanguageModel, Message } from "@tether/core"

type WireBlock =
  | Anthropic.TextBlockParam
  | Anthropic.ToolUseBlockParam
  | Anthropic.ToolResultBlockParam
  | Anthropic.ThinkingBlockParam
  | Anthropic.RedactedThinkingBlockParam

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The API wants a tool call's input as an object; a transcript may hold it as raw JSON text. */
const toolInput = (input: unknown): Record<string, unknown> => {
  if (isRecord(input)) return input
  if (typeof input === "string") {
    try {
      const parsed: unknown = JSON.parse(input)
      if (isRecord(parsed)) return parsed
    } catch {
      // not JSON: fall through
    }
  }
  return {}
}

const toWireBlock = (block: Message.ContentBlock): ReadonlyArray<WireBlock> => {
  switch (block.type) {
    case "text":
      // The API rejects empty text blocks; an interrupted turn can leave one behind.
      return block.text.trim() === "" ? [] : [{ type: "text", text: block.text }]
    case "tool_use":
      return [{ type: "tool_use", id: block.id, name: block.name, input: toolInput(block.input) }]
    case "tool_result":
      return [{ type: "tool_result", tool_use_id: block.toolUseId, content: block.content, is_error: block.isError }]
    case "thinking":
      return [{ type: "thinking", thinking: block.thinking, signature: block.signature }]
    case "redacted_thinking":
      return [{ type: "redacted_thinking", data: block.data }]
  }
}

const toWireMessage = (message: Message.Message): Anthropic.MessageParam =>
  message.role === "user"
    ? { role: "user", content: message.content.flatMap(toWireBlock) }
    : { role: "assistant", content: message.content.flatMap(toWireBlock) }

/** Each tool's wire form, by definition: an agent sends the same tools every turn. */
const wireTools = new WeakMap<LanguageModel.ToolDefinition, Anthropic.Tool>()

const toWireTool = (tool: LanguageModel.ToolDefinition): Anthropic.Tool => {
  let wire = wireTools.get(tool)
  if (wire === undefined) {
    wire = {
      name: tool.name,
      description: tool.description,
      input_schema: { type: "object", ...(tool.inputSchema as Record<string, unknown>) } as Anthropic.Tool.InputSchema
    }
    wireTools.set(tool, wire)
  }
  return wire
}

/** The Messages API request for one turn; with `thinkingBudget`, extended thinking is on. */
export const toParams = (
  model: string,
  request: LanguageModel.TurnRequest,
  thinkingBudget?: number | undefined
): Anthropic.MessageCreateParamsStreaming => ({
  model,
  max_tokens: request.maxTokens,
  messages: request.messages.map(toWireMessage),
  ...(request.system === undefined || request.system === "" ? {} : { system: request.system }),
  ...(request.tools.length === 0 ? {} : { tools: request.tools.map(toWireTool) }),
  ...(thinkingBudget === undefined ? {} : { thinking: { type: "enabled", budget_tokens: thinkingBudget } }),
  stream: true
})
