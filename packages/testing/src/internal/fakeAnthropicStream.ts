import type { Block, StreamReply } from "./fakeAnthropicScript.js"
import { signatureOf } from "./fakeAnthropicThinking.js"

/** One write of an SSE response. `token` steps are content deltas: they are paced and counted. */
export type Step =
  | { readonly _tag: "Event"; readonly event: string; readonly data: unknown; readonly isFinal: boolean }
  | { readonly _tag: "Token"; readonly index: number; readonly data: unknown }

/** Encodes one Server-Sent Event as the API writes it. */
export const encodeEvent = (event: string, data: unknown): string =>
  `event: ${event}\ndata: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

/** How many content deltas a reply streams. */
export const tokenCount = (reply: StreamReply): number =>
  reply.blocks.reduce((count, block) => count + block.chunks.length, 0)

const startBlock = (block: Block) => {
  switch (block.type) {
    case "text":
      return { type: "text", text: "" }
    case "thinking":
      return { type: "thinking", thinking: "", signature: "" }
    case "tool_use":
      return { type: "tool_use", id: block.id, name: block.name, input: {} }
  }
}

const delta = (block: Block, chunk: string) => {
  switch (block.type) {
    case "text":
      return { type: "text_delta", text: chunk }
    case "thinking":
      return { type: "thinking_delta", thinking: chunk }
    case "tool_use":
      return { type: "input_json_delta", partial_json: chunk }
  }
}

const usage = (inputTokens: number, outputTokens: number) => ({
  input_tokens: inputTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  output_tokens: outputTokens
})

/** The events of a streamed reply, in the order and shape of the real API. */
export const streamSteps = (reply: StreamReply, messageId: string, inputTokens: number): ReadonlyArray<Step> => {
  const steps: Array<Step> = []
  const event = (name: string, data: unknown, isFinal = false) =>
    steps.push({ _tag: "Event", event: name, data, isFinal })
  event("message_start", {
    type: "message_start",
    message: {
      id: messageId,
      type: "message",
      role: "assistant",
      model: reply.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: usage(inputTokens, 1)
    }
  })
  let tokenIndex = 0
  reply.blocks.forEach((block, index) => {
    event("content_block_start", { type: "content_block_start", index, content_block: startBlock(block) })
    if (index === 0) event("ping", { type: "ping" })
    if (block.type === "tool_use") {
      event("content_block_delta", { type: "content_block_delta", index, delta: delta(block, "") })
    }
    for (const chunk of block.chunks) {
      steps.push({
        _tag: "Token",
        index: tokenIndex++,
        data: { type: "content_block_delta", index, delta: delta(block, chunk) }
      })
    }
    if (block.type === "thinking") {
      event("content_block_delta", {
        type: "content_block_delta",
        index,
        delta: { type: "signature_delta", signature: signatureOf(block.chunks.join("")) }
      })
    }
    event("content_block_stop", { type: "content_block_stop", index })
  })
  event(
    "message_delta",
    {
      type: "message_delta",
      delta: { stop_reason: reply.stopReason, stop_sequence: null },
      usage: { output_tokens: reply.outputTokens ?? tokenIndex }
    },
    true
  )
  event("message_stop", { type: "message_stop" })
  return steps
}

/** The non-streaming answer: the whole message as one JSON body. */
export const jsonMessage = (reply: StreamReply, messageId: string, inputTokens: number) => ({
  id: messageId,
  type: "message",
  role: "assistant",
  model: reply.model,
  content: reply.blocks.map((block) => {
    const text = block.chunks.join("")
    switch (block.type) {
      case "text":
        return { type: "text", text }
      case "thinking":
        return { type: "thinking", thinking: text, signature: signatureOf(text) }
      case "tool_use":
        return { type: "tool_use", id: block.id, name: block.name, input: block.input }
    }
  }),
  stop_reason: reply.stopReason,
  stop_sequence: null,
  usage: usage(inputTokens, reply.outputTokens ?? tokenCount(reply))
})

/** The API's error body. */
export const errorBody = (errorType: string, message: string, requestId: string) => ({
  type: "error",
  error: { type: errorType, message },
  request_id: requestId
})
