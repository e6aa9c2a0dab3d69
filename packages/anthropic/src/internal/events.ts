import { LanguageModel, ModelError } from "@tether/core"
import { Either } from "effect"

type Nullable<A> = A | null | undefined

interface Usage {
  readonly input_tokens?: Nullable<number>
  readonly output_tokens?: Nullable<number>
  readonly cache_creation_input_tokens?: Nullable<number>
  readonly cache_read_input_tokens?: Nullable<number>
}

/** An event, content block or delta of a `type` the mapping skips (ping, citations_delta, ...). */
interface Ignored {
  readonly type: "ignored"
  readonly original: string
}

type ContentBlock =
  | { readonly type: "tool_use"; readonly id: string; readonly name: string }
  | { readonly type: "thinking"; readonly thinking: string; readonly signature: string }
  | { readonly type: "redacted_thinking"; readonly data: string }
  | Ignored

type Delta =
  | { readonly type: "text_delta"; readonly text: string }
  | { readonly type: "thinking_delta"; readonly thinking: string }
  | { readonly type: "input_json_delta"; readonly partial_json: string }
  | { readonly type: "signature_delta"; readonly signature: string }
  | Ignored

/** The stream events the mapping reads, as `decode` checks them. */
export type StreamEvent =
  | { readonly type: "message_start"; readonly message: { readonly usage: Usage } }
  | { readonly type: "content_block_start"; readonly index: number; readonly content_block: ContentBlock }
  | { readonly type: "content_block_delta"; readonly index: number; readonly delta: Delta }
  | { readonly type: "content_block_stop"; readonly index: number }
  | {
      readonly type: "message_delta"
      readonly delta: { readonly stop_reason?: Nullable<string> }
      readonly usage?: Nullable<Usage>
    }
  | { readonly type: "message_stop" }
  | Ignored

/** Where a payload departs from the protocol, and what was expected there. */
class Mismatch {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly actual: unknown
  ) {}
}

type Record_ = { readonly [key: string]: unknown }

const isRecord = (value: unknown): value is Record_ =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const kindOf = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : value === undefined ? "nothing" : typeof value

const record = (value: unknown, path: string): Record_ | Mismatch =>
  isRecord(value) ? value : new Mismatch(path, "an object", value)

const string = (value: unknown, path: string): string | Mismatch =>
  typeof value === "string" ? value : new Mismatch(path, "a string", value)

const number = (value: unknown, path: string): number | Mismatch =>
  typeof value === "number" ? value : new Mismatch(path, "a number", value)

/** An object with a string `type`: what every event, content block and delta is. */
const typed = (value: unknown, path: string): { readonly fields: Record_; readonly type: string } | Mismatch => {
  const fields = record(value, path)
  if (fields instanceof Mismatch) return fields
  const type = string(fields.type, path === "" ? "type" : `${path}.type`)
  return type instanceof Mismatch ? type : { fields, type }
}

const usageKeys = ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"] as const

const usage = (value: unknown, path: string): Usage | Mismatch => {
  const fields = record(value, path)
  if (fields instanceof Mismatch) return fields
  const out: { -readonly [K in keyof Usage]: Usage[K] } = {}
  for (const key of usageKeys) {
    if (!(key in fields)) continue
    const n = fields[key]
    if (n !== undefined && n !== null && typeof n !== "number")
      return new Mismatch(`${path}.${key}`, "a number or null", n)
    out[key] = n
  }
  return out
}

const contentBlock = (value: unknown): ContentBlock | Mismatch => {
  const head = typed(value, "content_block")
  if (head instanceof Mismatch) return head
  const { fields: block, type } = head
  switch (type) {
    case "tool_use": {
      const id = string(block.id, "content_block.id")
      if (id instanceof Mismatch) return id
      const name = string(block.name, "content_block.name")
      return name instanceof Mismatch ? name : { type, id, name }
    }
    case "thinking": {
      const thinking = string(block.thinking, "content_block.thinking")
      if (thinking instanceof Mismatch) return thinking
      const signature = string(block.signature, "content_block.signature")
      return signature instanceof Mismatch ? signature : { type, thinking, signature }
    }
    case "redacted_thinking": {
      const data = string(block.data, "content_block.data")
      return data instanceof Mismatch ? data : { type, data }
    }
    default:
      return { type: "ignored", original: type }
  }
}

const delta = (value: unknown): Delta | Mismatch => {
  const head = typed(value, "delta")
  if (head instanceof Mismatch) return head
  const { fields, type } = head
  switch (type) {
    case "text_delta": {
      const text = string(fields.text, "delta.text")
      return text instanceof Mismatch ? text : { type, text }
    }
    case "thinking_delta": {
      const thinking = string(fields.thinking, "delta.thinking")
      return thinking instanceof Mismatch ? thinking : { type, thinking }
    }
    case "input_json_delta": {
      const json = string(fields.partial_json, "delta.partial_json")
      return json instanceof Mismatch ? json : { type, partial_json: json }
    }
    case "signature_delta": {
      const signature = string(fields.signature, "delta.signature")
      return signature instanceof Mismatch ? signature : { type, signature }
    }
    default:
      return { type: "ignored", original: type }
  }
}

/** Checks one SSE payload against the protocol (by hand: it runs once per streamed token). */
const check = (data: unknown): StreamEvent | Mismatch => {
  const head = typed(data, "")
  if (head instanceof Mismatch) return head
  const { fields: event, type } = head
  switch (type) {
    case "message_start": {
      const message = record(event.message, "message")
      if (message instanceof Mismatch) return message
      const read = usage(message.usage, "message.usage")
      return read instanceof Mismatch ? read : { type, message: { usage: read } }
    }
    case "content_block_start":
    case "content_block_delta":
    case "content_block_stop": {
      const index = number(event.index, "index")
      if (index instanceof Mismatch) return index
      if (type === "content_block_stop") return { type, index }
      if (type === "content_block_start") {
        const block = contentBlock(event.content_block)
        return block instanceof Mismatch ? block : { type, index, content_block: block }
      }
      const read = delta(event.delta)
      return read instanceof Mismatch ? read : { type, index, delta: read }
    }
    case "message_delta": {
      const fields = record(event.delta, "delta")
      if (fields instanceof Mismatch) return fields
      const stopReason = fields.stop_reason
      if (stopReason !== undefined && stopReason !== null && typeof stopReason !== "string") {
        return new Mismatch("delta.stop_reason", "a string or null", stopReason)
      }
      const read = event.usage === undefined || event.usage === null ? event.usage : usage(event.usage, "usage")
      if (read instanceof Mismatch) return read
      return {
        type,
        delta: "stop_reason" in fields ? { stop_reason: stopReason } : {},
        ...("usage" in event ? { usage: read } : {})
      }
    }
    case "message_stop":
      return { type }
    default:
      return { type: "ignored", original: type }
  }
}

/** Decodes one SSE payload; a payload that is not the protocol is a `MalformedResponseError`. */
export const decode = (data: unknown): Either.Either<StreamEvent, ModelError.MalformedResponseError> => {
  const event = check(data)
  if (!(event instanceof Mismatch)) return Either.right(event)
  // (Not `String(type)`: a payload's `type` may be any JSON, even an object whose `toString` is not a function.)
  const type = !isRecord(data) ? "?" : typeof data.type === "string" ? data.type : kindOf(data.type)
  const where = event.path === "" ? "" : `${event.path}: `
  return Either.left(
    new ModelError.MalformedResponseError({
      message: `unexpected ${type} event: ${where}expected ${event.expected}, got ${kindOf(event.actual)}`
    })
  )
}

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

/** A thinking block being streamed (signed by a `signature_delta`), or one that arrived redacted. */
type ThinkingInProgress =
  | { readonly type: "thinking"; thinking: string; signature: string }
  | { readonly type: "redacted_thinking"; readonly data: string }

/** What a turn has seen so far: usage, open tool calls and thinking blocks, the stop reason. */
export interface TurnState {
  inputTokens: number
  outputTokens: number
  stopReason: LanguageModel.StopReason | undefined
  isStarted: boolean
  isStopped: boolean
  /**
   * Content blocks started and not yet stopped: those of index 0 to 30 as bits (a turn has a few), any other in
   * `otherOpenBlocks`. (Each collection is made on its first use.)
   */
  openBlocks: number
  otherOpenBlocks: Set<number> | undefined
  toolCalls: Map<number, { readonly id: string; readonly name: string; json: string }> | undefined
  thinking: Map<number, ThinkingInProgress> | undefined
}

export const initialState = (): TurnState => ({
  inputTokens: 0,
  outputTokens: 0,
  stopReason: undefined,
  isStarted: false,
  isStopped: false,
  openBlocks: 0,
  otherOpenBlocks: undefined,
  toolCalls: undefined,
  thinking: undefined
})

/** The bit of a block index kept in `openBlocks`, or 0 for one kept in `otherOpenBlocks`. */
const bitOf = (index: number): number => (Number.isInteger(index) && index >= 0 && index <= 30 ? 1 << index : 0)

const isOpen = (state: TurnState, index: number): boolean => {
  const bit = bitOf(index)
  return bit === 0 ? state.otherOpenBlocks?.has(index) === true : (state.openBlocks & bit) !== 0
}

const setOpen = (state: TurnState, index: number, isOpened: boolean): void => {
  const bit = bitOf(index)
  if (bit !== 0) state.openBlocks = isOpened ? state.openBlocks | bit : state.openBlocks & ~bit
  else if (isOpened) (state.otherOpenBlocks ??= new Set()).add(index)
  else state.otherOpenBlocks?.delete(index)
}

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
        return isOpen(state, event.index) ? `content block ${event.index} started twice` : undefined
      case "content_block_delta":
      case "content_block_stop":
        return isOpen(state, event.index) ? undefined : `${event.type} of content block ${event.index}, never started`
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
  ThinkingEnd,
  ToolInputDelta,
  ToolUseEnd,
  ToolUseStart,
  Usage: UsageEvent
} = LanguageModel.ModelEvent

/** A part of the input figure: absent is 0; one that cannot be a count spoils the sum (`NaN`, ignored downstream). */
const inputPart = (tokens: Nullable<number>): number => (tokens == null ? 0 : tokens >= 0 ? tokens : Number.NaN)

/** The turn's usage so far. Figures go on as the server sent them: the token ledger checks them (see TokenBudget). */
const readUsage = (state: TurnState, usage: Usage): LanguageModel.ModelEvent => {
  if (usage.input_tokens != null) {
    state.inputTokens =
      inputPart(usage.input_tokens) +
      inputPart(usage.cache_creation_input_tokens) +
      inputPart(usage.cache_read_input_tokens)
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
      setOpen(state, event.index, true)
      const block = event.content_block
      switch (block.type) {
        case "ignored":
          return []
        case "thinking":
          ;(state.thinking ??= new Map()).set(event.index, {
            type: "thinking",
            thinking: block.thinking,
            signature: block.signature
          })
          return block.thinking === "" ? [] : [ThinkingDelta({ text: block.thinking })]
        case "redacted_thinking":
          ;(state.thinking ??= new Map()).set(event.index, block)
          return []
        case "tool_use":
          ;(state.toolCalls ??= new Map()).set(event.index, { id: block.id, name: block.name, json: "" })
          return [ToolUseStart({ id: block.id, name: block.name })]
      }
    }
    case "content_block_delta": {
      const delta = event.delta
      if (delta.type === "text_delta") return delta.text === "" ? [] : [TextDelta({ text: delta.text })]
      if (delta.type === "thinking_delta") {
        const block = state.thinking?.get(event.index)
        if (block?.type === "thinking") block.thinking += delta.thinking
        return delta.thinking === "" ? [] : [ThinkingDelta({ text: delta.thinking })]
      }
      if (delta.type === "signature_delta") {
        const block = state.thinking?.get(event.index)
        if (block?.type === "thinking") block.signature += delta.signature
        return []
      }
      if (delta.type === "ignored") return []
      const call = state.toolCalls?.get(event.index)
      if (call === undefined || delta.partial_json === "") return []
      call.json += delta.partial_json
      return [ToolInputDelta({ id: call.id, partialJson: delta.partial_json })]
    }
    case "content_block_stop": {
      setOpen(state, event.index, false)
      const thinking = state.thinking?.get(event.index)
      if (thinking !== undefined) {
        state.thinking!.delete(event.index)
        // Unsigned thinking cannot be sent back (the API checks the signature): it stays out of the transcript.
        if (thinking.type === "thinking" && thinking.signature === "") return []
        // (A copy of the thinking: the state's block is the one the deltas appended to.)
        return [ThinkingEnd({ block: thinking.type === "thinking" ? { ...thinking } : thinking })]
      }
      const call = state.toolCalls?.get(event.index)
      if (call === undefined) return []
      state.toolCalls!.delete(event.index)
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
