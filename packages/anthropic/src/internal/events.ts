import { LanguageModel, ModelError } from "@tether/core"
import { Either, ParseResult, Schema } from "effect"

const NullableNumber = Schema.optional(Schema.NullOr(Schema.Number))

/** A `type` other than the listed ones, decoded as `ignored`: events and deltas the mapping skips (ping, signature_delta, ...). */
const OtherType = (known: ReadonlyArray<string>) =>
  Schema.transform(
    Schema.Struct({ type: Schema.String.pipe(Schema.filter((type) => !known.includes(type))) }),
    Schema.Struct({ type: Schema.Literal("ignored"), original: Schema.String }),
    {
      strict: true,
      decode: ({ type }) => ({ type: "ignored" as const, original: type }),
      encode: ({ original }) => ({ type: original })
    }
  )

const Usage = Schema.Struct({
  input_tokens: NullableNumber,
  output_tokens: NullableNumber,
  cache_creation_input_tokens: NullableNumber,
  cache_read_input_tokens: NullableNumber
})

const MessageStart = Schema.Struct({
  type: Schema.Literal("message_start"),
  message: Schema.Struct({ usage: Usage })
})

const ContentBlockStart = Schema.Struct({
  type: Schema.Literal("content_block_start"),
  index: Schema.Number,
  content_block: Schema.Union(
    Schema.Struct({ type: Schema.Literal("tool_use"), id: Schema.String, name: Schema.String }),
    OtherType(["tool_use"])
  )
})

const ContentBlockDelta = Schema.Struct({
  type: Schema.Literal("content_block_delta"),
  index: Schema.Number,
  delta: Schema.Union(
    Schema.Struct({ type: Schema.Literal("text_delta"), text: Schema.String }),
    Schema.Struct({ type: Schema.Literal("thinking_delta"), thinking: Schema.String }),
    Schema.Struct({ type: Schema.Literal("input_json_delta"), partial_json: Schema.String }),
    OtherType(["text_delta", "thinking_delta", "input_json_delta"])
  )
})

const ContentBlockStop = Schema.Struct({ type: Schema.Literal("content_block_stop"), index: Schema.Number })

const MessageDelta = Schema.Struct({
  type: Schema.Literal("message_delta"),
  delta: Schema.Struct({ stop_reason: Schema.optional(Schema.NullOr(Schema.String)) }),
  usage: Schema.optional(Schema.NullOr(Usage))
})

const MessageStop = Schema.Struct({ type: Schema.Literal("message_stop") })

/** The stream events the mapping reads, checked before use. */
export const StreamEvent = Schema.Union(
  MessageStart,
  ContentBlockStart,
  ContentBlockDelta,
  ContentBlockStop,
  MessageDelta,
  MessageStop,
  OtherType([
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop"
  ])
)
export type StreamEvent = typeof StreamEvent.Type

const decodeEvent = Schema.decodeUnknownEither(StreamEvent)

/** Decodes one SSE payload; a payload that is not the protocol is a `MalformedResponseError`. */
export const decode = (data: unknown): Either.Either<StreamEvent, ModelError.MalformedResponseError> =>
  Either.mapLeft(decodeEvent(data), (error) => {
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
    const type = typeof data === "object" && data !== null && "type" in data ? String(data.type) : "?"
    const where = issue === undefined ? "" : `${issue.path.join(".")}: ${issue.message}`
    return new ModelError.MalformedResponseError({ message: `unexpected ${type} event: ${where}` })
  })

const stopReasons: ReadonlyArray<LanguageModel.StopReason> = [
  "end_turn",
  "tool_use",
  "max_tokens",
  "stop_sequence",
  "pause_turn",
  "refusal"
]

const toStopReason = (reason: string): LanguageModel.StopReason => {
  if (reason === "model_context_window_exceeded") return "max_tokens"
  return stopReasons.find((known) => known === reason) ?? "unknown"
}

/** What a turn has seen so far: usage, open tool calls, the stop reason. */
export interface TurnState {
  inputTokens: number
  outputTokens: number
  stopReason: LanguageModel.StopReason | undefined
  isStarted: boolean
  isStopped: boolean
  /** Content blocks started and not yet stopped, by index. */
  readonly openBlocks: Set<number>
  readonly toolCalls: Map<number, { readonly id: string; readonly name: string; json: string }>
}

export const initialState = (): TurnState => ({
  inputTokens: 0,
  outputTokens: 0,
  stopReason: undefined,
  isStarted: false,
  isStopped: false,
  openBlocks: new Set(),
  toolCalls: new Map()
})

/**
 * Why `event` cannot come next in a well-formed stream (`message_start` first, content blocks opened before
 * their deltas and stop, nothing after `message_stop`), or `undefined` when it can. Unknown events (`ping`)
 * may come anywhere before the stop.
 */
export const outOfOrder = (state: TurnState, event: StreamEvent): ModelError.MalformedResponseError | undefined => {
  const problem = (() => {
    if (state.isStopped) return `${event.type === "ignored" ? event.original : event.type} after message_stop`
    if (event.type === "ignored") return undefined
    if (event.type === "message_start") return state.isStarted ? "a second message_start" : undefined
    if (!state.isStarted) return `${event.type} before message_start`
    switch (event.type) {
      case "content_block_start":
        return state.openBlocks.has(event.index) ? `content block ${event.index} started twice` : undefined
      case "content_block_delta":
      case "content_block_stop":
        return state.openBlocks.has(event.index)
          ? undefined
          : `${event.type} of content block ${event.index}, never started`
      default:
        return undefined
    }
  })()
  return problem === undefined ? undefined : new ModelError.MalformedResponseError({ message: `unexpected ${problem}` })
}

const {
  Stop,
  TextDelta,
  ThinkingDelta,
  ToolInputDelta,
  ToolUseEnd,
  ToolUseStart,
  Usage: UsageEvent
} = LanguageModel.ModelEvent

const readUsage = (state: TurnState, usage: typeof Usage.Type): LanguageModel.ModelEvent => {
  if (usage.input_tokens != null) {
    state.inputTokens =
      usage.input_tokens + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0)
  }
  if (usage.output_tokens != null) state.outputTokens = usage.output_tokens
  return UsageEvent({ inputTokens: state.inputTokens, outputTokens: state.outputTokens })
}

/** The model events one stream event stands for, updating `state`. */
export const toModelEvents = (state: TurnState, event: StreamEvent): ReadonlyArray<LanguageModel.ModelEvent> => {
  switch (event.type) {
    case "message_start":
      state.isStarted = true
      return [readUsage(state, event.message.usage)]
    case "content_block_start": {
      state.openBlocks.add(event.index)
      const block = event.content_block
      if (block.type === "ignored") return []
      state.toolCalls.set(event.index, { id: block.id, name: block.name, json: "" })
      return [ToolUseStart({ id: block.id, name: block.name })]
    }
    case "content_block_delta": {
      const delta = event.delta
      if (delta.type === "text_delta") return delta.text === "" ? [] : [TextDelta({ text: delta.text })]
      if (delta.type === "thinking_delta") return delta.thinking === "" ? [] : [ThinkingDelta({ text: delta.thinking })]
      if (delta.type === "ignored") return []
      const call = state.toolCalls.get(event.index)
      if (call === undefined || delta.partial_json === "") return []
      call.json += delta.partial_json
      return [ToolInputDelta({ id: call.id, partialJson: delta.partial_json })]
    }
    case "content_block_stop": {
      state.openBlocks.delete(event.index)
      const call = state.toolCalls.get(event.index)
      if (call === undefined) return []
      state.toolCalls.delete(event.index)
      return [ToolUseEnd({ id: call.id, name: call.name, inputJson: call.json === "" ? "{}" : call.json })]
    }
    case "message_delta":
      if (event.delta.stop_reason != null) state.stopReason = toStopReason(event.delta.stop_reason)
      return event.usage == null ? [] : [readUsage(state, event.usage)]
    case "message_stop":
      state.isStopped = true
      return [Stop({ reason: state.stopReason ?? "unknown" })]
    case "ignored":
      return []
  }
}
