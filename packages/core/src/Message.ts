/**
 * The transcript of a session: provider-neutral messages made of text, tool
 * use and tool result blocks, and the model's thinking (kept, signed, so that a
 * tool loop can send it back). A transcript Tether hands back always pairs every
 * `tool_use` with a `tool_result`, even after a cancel.
 *
 * @example
 * ```ts
 * import { Message } from "@tether/core"
 *
 * const history = [Message.user("What is 2 + 2?")]
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** @since 0.1.0 */
export const TextBlock = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })
/** @since 0.1.0 */
export type TextBlock = typeof TextBlock.Type

/** @since 0.1.0 */
export const ToolUseBlock = Schema.Struct({
  type: Schema.Literal("tool_use"),
  id: Schema.String,
  name: Schema.String,
  input: Schema.Unknown
})
/** @since 0.1.0 */
export type ToolUseBlock = typeof ToolUseBlock.Type

/** @since 0.1.0 */
export const ToolResultBlock = Schema.Struct({
  type: Schema.Literal("tool_result"),
  toolUseId: Schema.String,
  content: Schema.String,
  isError: Schema.Boolean
})
/** @since 0.1.0 */
export type ToolResultBlock = typeof ToolResultBlock.Type

/**
 * The model's thinking, as it streamed, with the provider's `signature` of it: the provider checks the signature
 * when the block comes back in a later request.
 *
 * @since 0.1.0
 */
export const ThinkingBlock = Schema.Struct({
  type: Schema.Literal("thinking"),
  thinking: Schema.String,
  signature: Schema.String
})
/** @since 0.1.0 */
export type ThinkingBlock = typeof ThinkingBlock.Type

/**
 * Thinking the provider only hands out encrypted (`data`), to be sent back as it is.
 *
 * @since 0.1.0
 */
export const RedactedThinkingBlock = Schema.Struct({ type: Schema.Literal("redacted_thinking"), data: Schema.String })
/** @since 0.1.0 */
export type RedactedThinkingBlock = typeof RedactedThinkingBlock.Type

/** @since 0.1.0 */
export const ContentBlock = Schema.Union(TextBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock)
/** @since 0.1.0 */
export type ContentBlock = typeof ContentBlock.Type

/** @since 0.1.0 */
export const Message = Schema.Struct({
  role: Schema.Literal("user", "assistant"),
  content: Schema.Array(ContentBlock)
})
/** @since 0.1.0 */
export type Message = typeof Message.Type

/**
 * A user message with one text block.
 *
 * @since 0.1.0
 */
export const user = (text: string): Message => ({ role: "user", content: [{ type: "text", text }] })

/**
 * An assistant message with one text block.
 *
 * @since 0.1.0
 */
export const assistant = (text: string): Message => ({ role: "assistant", content: [{ type: "text", text }] })

/**
 * The concatenated text blocks of a message.
 *
 * @since 0.1.0
 */
export const text = (message: Message): string =>
  message.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("")

/**
 * The ids of `tool_use` blocks in `messages` that no later `tool_result` answers.
 * Empty for a transcript the API will accept.
 *
 * @since 0.1.0
 */
export const unansweredToolUses = (messages: ReadonlyArray<Message>): ReadonlyArray<string> => {
  const answered = new Set<string>()
  for (const message of messages) {
    for (const block of message.content) if (block.type === "tool_result") answered.add(block.toolUseId)
  }
  return messages.flatMap((message) =>
    message.content.flatMap((block) => (block.type === "tool_use" && !answered.has(block.id) ? [block.id] : []))
  )
}
