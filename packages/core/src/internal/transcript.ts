import type {
  ContentBlock,
  Message,
  RedactedThinkingBlock,
  ThinkingBlock,
  ToolResultBlock,
  ToolUseBlock
} from "../Message.js"

/** Where each tool call of the current turn stands. */
export type ToolStatus =
  | { readonly _tag: "NotStarted" }
  | { readonly _tag: "Running" }
  | { readonly _tag: "Succeeded"; readonly content: string }
  | { readonly _tag: "Failed"; readonly content: string }

/** The transcript of one agent as a run builds it, including a turn still streaming. */
export interface TranscriptState {
  readonly messages: ReadonlyArray<Message>
  /** The assistant message being streamed: thinking blocks, text so far and tool uses completed so far. */
  readonly streaming: Streaming | undefined
  readonly toolStatus: ReadonlyMap<string, ToolStatus>
}

/** What a turn has streamed so far, complete blocks only (a thinking block counts once it is signed). */
export interface Streaming {
  readonly thinking: ReadonlyArray<ThinkingBlock | RedactedThinkingBlock>
  readonly text: string
  readonly toolUses: ReadonlyArray<ToolUseBlock>
}

/** An empty turn. */
export const nothingStreamed: Streaming = { thinking: [], text: "", toolUses: [] }

/**
 * The assistant message's content for what streamed: thinking first (where the provider puts it), then the text,
 * then the tool uses. Empty when nothing but thinking streamed: a message of thinking alone is not one to keep.
 */
export const assistantContent = (streaming: Streaming): ReadonlyArray<ContentBlock> =>
  streaming.text.length === 0 && streaming.toolUses.length === 0
    ? []
    : [
        ...streaming.thinking,
        ...(streaming.text.length > 0 ? [{ type: "text" as const, text: streaming.text }] : []),
        ...streaming.toolUses
      ]

/**
 * One agent's transcript state, replaced (never mutated in place) as the run goes. A plain cell, not a `Ref`:
 * it is read and written synchronously, also from a provider's event callback, one event at a time.
 */
export interface Cell {
  current: TranscriptState
}

/** No tool call yet: one map for every transcript (never written: a change copies it). */
export const noToolStatus: ReadonlyMap<string, ToolStatus> = new Map()

/**
 * A transcript state, written out: a state changes with every streamed chunk, and a spread of the last one into a
 * literal costs microseconds where a literal of its three fields does not.
 */
export const state = (
  messages: ReadonlyArray<Message>,
  streaming: Streaming | undefined,
  toolStatus: ReadonlyMap<string, ToolStatus>
): TranscriptState => ({ messages, streaming, toolStatus })

export const initial = (messages: ReadonlyArray<Message>): Cell => ({
  current: state(messages, undefined, noToolStatus)
})

const honestResult = (toolUseId: string, status: ToolStatus | undefined, why: string): ToolResultBlock => {
  const result = (content: string): ToolResultBlock => ({ type: "tool_result", toolUseId, content, isError: true })
  switch (status?._tag) {
    case undefined:
    case "NotStarted":
      return result(`Not run: the run stopped (${why}) before this tool started.`)
    case "Running":
      return result(
        `Interrupted: the run stopped (${why}) while this tool was running; its staged writes were rolled back.`
      )
    case "Succeeded":
      return result(
        `The tool finished, but the run stopped (${why}) before its writes were committed; they were rolled back. Its output was: ${status.content}`
      )
    case "Failed":
      return result(status.content)
  }
}

/**
 * Closes a transcript after a run stopped early: keeps the text streamed so far
 * and answers every `tool_use` with a `tool_result` that says what happened, so
 * the session's next message is accepted by the API.
 */
export const close = (state: TranscriptState, why: string): ReadonlyArray<Message> => {
  const messages = [...state.messages]
  if (state.streaming !== undefined) {
    const content = assistantContent(state.streaming)
    if (content.length > 0) messages.push({ role: "assistant", content })
  }
  const last = messages[messages.length - 1]
  if (last?.role === "assistant") {
    const toolUses = last.content.filter((block): block is ToolUseBlock => block.type === "tool_use")
    if (toolUses.length > 0) {
      messages.push({
        role: "user",
        content: toolUses.map((use) => honestResult(use.id, state.toolStatus.get(use.id), why))
      })
    }
  }
  return messages
}
