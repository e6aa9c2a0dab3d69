/**
 * The fake's script: what it answers each request with (streamed blocks, HTTP errors, raw bodies, hangs, resets)
 * and the faults a stream can have. Re-exported by `FakeAnthropic`, where each export is documented (the reference and
 * editors read the doc comments there).
 */
import type { IncomingHttpHeaders } from "node:http"
import { signatureOf as signature } from "./fakeAnthropicThinking.js"
import type { WireRequest } from "./fakeAnthropicWire.js"

export interface TextBlock {
  readonly type: "text"
  readonly chunks: ReadonlyArray<string>
}

export interface ThinkingBlock {
  readonly type: "thinking"
  readonly chunks: ReadonlyArray<string>
}

export interface ToolUseBlock {
  readonly type: "tool_use"
  readonly id: string
  readonly name: string
  readonly input: object
  readonly chunks: ReadonlyArray<string>
}

export type Block = TextBlock | ThinkingBlock | ToolUseBlock

export interface Fault {
  readonly kind:
    | "reset"
    | "end-early"
    | "garbage"
    | "truncated-json"
    | "unexpected-shape"
    | "error-event"
    | "silent"
    | "pings"
    | "oversized-line"
    | "oversized-event"
  readonly afterTokens: number
  /** The fault comes right after the response headers, before `message_start` (`afterTokens` is not used). */
  readonly afterHeaders?: boolean
  readonly errorType?: string
  readonly message?: string
  /** `pings`: milliseconds between two pings. */
  readonly pingInterval?: number
  /** `oversized-line`, `oversized-event`: the size of the line or event. */
  readonly bytes?: number
}

export interface StreamReply {
  readonly _tag: "Stream"
  readonly blocks: ReadonlyArray<Block>
  readonly stopReason: string
  readonly model: string
  /** `undefined`: about a quarter of the request body's length. Sent as given, even negative. */
  readonly inputTokens: number | undefined
  /** `undefined`: the number of content deltas. Sent as given, even negative. */
  readonly outputTokens: number | undefined
  /** Milliseconds between two content deltas (the first one is written with the headers). */
  readonly interval: number
  /** Milliseconds before the response headers. */
  readonly firstByteDelay: number
  /** Extra pauses: token index (0-based) to milliseconds waited before it; index = token count stalls the end. */
  readonly stalls: Readonly<Record<number, number>>
  readonly fault: Fault | undefined
}

export interface ErrorReply {
  readonly _tag: "HttpError"
  readonly status: number
  readonly errorType: string
  readonly message: string
  readonly headers: Readonly<Record<string, string>>
  readonly firstByteDelay: number
}

export interface RawReply {
  readonly _tag: "Raw"
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly firstByteDelay: number
}

export interface HangReply {
  readonly _tag: "Hang"
}

export interface ResetReply {
  readonly _tag: "Reset"
  readonly afterMillis: number
}

export type Reply = StreamReply | ErrorReply | RawReply | HangReply | ResetReply

export interface ScriptRequest {
  /** 0 for the first request the server received. */
  readonly index: number
  readonly body: WireRequest
  readonly headers: IncomingHttpHeaders
}

export type Script = ReadonlyArray<Reply> | ((request: ScriptRequest) => Reply)

export interface StreamOptions {
  readonly interval?: number
  readonly firstByteDelay?: number
  readonly stalls?: Readonly<Record<number, number>>
  readonly inputTokens?: number
  readonly outputTokens?: number
  readonly stopReason?: string
  readonly model?: string
  readonly fault?: Fault
}

const splitWords = (text: string): ReadonlyArray<string> => text.match(/\S+\s*|\s+/g) ?? []

const splitInto = (text: string, count: number): ReadonlyArray<string> => {
  const pieces = Math.max(1, Math.min(Math.floor(count), text.length))
  return Array.from({ length: pieces }, (_, i) =>
    text.slice(Math.floor((i * text.length) / pieces), Math.floor(((i + 1) * text.length) / pieces))
  )
}

const toChunks = (text: string | ReadonlyArray<string>, tokens: number | undefined): ReadonlyArray<string> =>
  typeof text !== "string" ? text : tokens === undefined ? splitWords(text) : splitInto(text, tokens)

let toolUseCounter = 0

export const textBlock = (
  text: string | ReadonlyArray<string>,
  options: { readonly tokens?: number } = {}
): TextBlock => ({
  type: "text",
  chunks: toChunks(text, options.tokens)
})

export const signatureOf: (thinking: string) => string = signature

export const thinkingBlock = (
  text: string | ReadonlyArray<string>,
  options: { readonly tokens?: number } = {}
): ThinkingBlock => ({ type: "thinking", chunks: toChunks(text, options.tokens) })

export const toolUseBlock = (
  name: string,
  input: object,
  options: { readonly id?: string; readonly chunkSize?: number } = {}
): ToolUseBlock => {
  const json = JSON.stringify(input)
  const size = Math.max(1, options.chunkSize ?? 12)
  return {
    type: "tool_use",
    id: options.id ?? `toolu_fake_${++toolUseCounter}`,
    name,
    input,
    chunks: Array.from({ length: Math.ceil(json.length / size) }, (_, i) => json.slice(i * size, (i + 1) * size))
  }
}

export const stream = (blocks: ReadonlyArray<Block>, options: StreamOptions = {}): StreamReply => ({
  _tag: "Stream",
  blocks,
  stopReason: options.stopReason ?? "end_turn",
  model: options.model ?? "claude-fake",
  inputTokens: options.inputTokens,
  outputTokens: options.outputTokens,
  interval: options.interval ?? 0,
  firstByteDelay: options.firstByteDelay ?? 0,
  stalls: options.stalls ?? {},
  fault: options.fault
})

export const text = (
  content: string | ReadonlyArray<string>,
  options: StreamOptions & { readonly tokens?: number } = {}
): StreamReply => stream([textBlock(content, options)], options)

export const toolUse = (
  name: string,
  input: object,
  options: StreamOptions & { readonly id?: string; readonly preamble?: string; readonly chunkSize?: number } = {}
): StreamReply =>
  stream(
    [...(options.preamble === undefined ? [] : [textBlock(options.preamble)]), toolUseBlock(name, input, options)],
    { stopReason: "tool_use", ...options }
  )

const defaultErrorType = (status: number): string => {
  switch (status) {
    case 400:
      return "invalid_request_error"
    case 401:
      return "authentication_error"
    case 403:
      return "permission_error"
    case 404:
      return "not_found_error"
    case 413:
      return "request_too_large"
    case 429:
      return "rate_limit_error"
    case 529:
      return "overloaded_error"
    default:
      return "api_error"
  }
}

export interface HttpErrorOptions {
  readonly errorType?: string
  readonly message?: string
  readonly headers?: Readonly<Record<string, string>>
  /** The `retry-after` header: seconds, or an HTTP date. */
  readonly retryAfter?: number | string
  /** The `retry-after-ms` header. */
  readonly retryAfterMs?: number
  readonly firstByteDelay?: number
}

export const httpError = (status: number, options: HttpErrorOptions = {}): ErrorReply => ({
  _tag: "HttpError",
  status,
  errorType: options.errorType ?? defaultErrorType(status),
  message: options.message ?? `Fake ${status}`,
  headers: {
    ...(options.retryAfter === undefined ? {} : { "retry-after": String(options.retryAfter) }),
    ...(options.retryAfterMs === undefined ? {} : { "retry-after-ms": String(options.retryAfterMs) }),
    ...options.headers
  },
  firstByteDelay: options.firstByteDelay ?? 0
})

export const rateLimited = (retryAfter?: number | string, options: HttpErrorOptions = {}): ErrorReply =>
  httpError(429, { message: "Rate limited", ...(retryAfter === undefined ? {} : { retryAfter }), ...options })

export const overloaded = (options: HttpErrorOptions = {}): ErrorReply =>
  httpError(529, { message: "Overloaded", ...options })

export const raw = (
  body: string,
  options: {
    readonly status?: number
    readonly headers?: Readonly<Record<string, string>>
    readonly firstByteDelay?: number
  } = {}
): RawReply => ({
  _tag: "Raw",
  status: options.status ?? 200,
  headers: { "content-type": "application/json", ...options.headers },
  body,
  firstByteDelay: options.firstByteDelay ?? 0
})

export const hang = (): HangReply => ({ _tag: "Hang" })

export const resetConnection = (afterMillis = 0): ResetReply => ({ _tag: "Reset", afterMillis })
