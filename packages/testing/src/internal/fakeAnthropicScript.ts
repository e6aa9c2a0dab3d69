/**
 * The fake's script: what it answers each request with (streamed blocks, HTTP errors, raw bodies, hangs, resets)
 * and the faults a stream can have. Re-exported by `FakeAnthropic`.
 */
import type { IncomingHttpHeaders } from "node:http"
import { signatureOf as signature } from "./fakeAnthropicThinking.js"
import type { WireRequest } from "./fakeAnthropicWire.js"

/** A text block streamed as `chunks` (one `text_delta` each). @since 0.1.0 */
export interface TextBlock {
  readonly type: "text"
  readonly chunks: ReadonlyArray<string>
}

/** A thinking block streamed as `thinking_delta`s, closed by a `signature_delta`. @since 0.1.0 */
export interface ThinkingBlock {
  readonly type: "thinking"
  readonly chunks: ReadonlyArray<string>
}

/** A tool call whose input JSON streams as `input_json_delta`s (the first one `""`, as the API does). @since 0.1.0 */
export interface ToolUseBlock {
  readonly type: "tool_use"
  readonly id: string
  readonly name: string
  readonly input: object
  readonly chunks: ReadonlyArray<string>
}

/** @since 0.1.0 */
export type Block = TextBlock | ThinkingBlock | ToolUseBlock

/**
 * Something that goes wrong in a stream once `afterTokens` content deltas were
 * written (it takes the slot of the next token, after its interval), or right
 * after the response headers with `afterHeaders` (before `message_start`):
 * - `reset`: the server destroys the socket;
 * - `end-early`: the response ends cleanly without `message_delta`/`message_stop`;
 * - `garbage`: a `data:` line that is not JSON;
 * - `truncated-json`: half a JSON object;
 * - `unexpected-shape`: valid JSON that is not a protocol event;
 * - `error-event`: an SSE `error` event (default `overloaded_error`);
 * - `silent`: the server writes nothing more and holds the connection open until the client closes it;
 * - `pings`: the server writes only `ping` events, one every `pingInterval` milliseconds (default 1000), until the
 *   client closes the connection;
 * - `oversized-line`: a `content_block_delta` whose `data:` line runs `bytes` bytes (default 40 MiB) without a
 *   newline, then the response ends;
 * - `oversized-event`: one event of `bytes` bytes (default 40 MiB) in `data:` lines of 1 KiB.
 *
 * The last two are written as fast as the client reads (`bytesWritten` of the record shows how far it read).
 * A fault past the last token happens before `message_delta`. In a JSON (non-streaming) answer only `reset`,
 * `garbage` and `truncated-json` apply.
 *
 * A reply's bad usage figures need no fault: `inputTokens` and `outputTokens` are sent as given, negative or absurd.
 *
 * @since 0.1.0
 */
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

/** A successful turn, streamed when the request says `stream: true`, else sent as one JSON message. @since 0.1.0 */
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

/** An API error response: JSON body `{ type: "error", error: { type, message } }`. @since 0.1.0 */
export interface ErrorReply {
  readonly _tag: "HttpError"
  readonly status: number
  readonly errorType: string
  readonly message: string
  readonly headers: Readonly<Record<string, string>>
  readonly firstByteDelay: number
}

/** Any status, headers and body, verbatim (e.g. a 200 whose body is not JSON). @since 0.1.0 */
export interface RawReply {
  readonly _tag: "Raw"
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly firstByteDelay: number
}

/** Accepts the request and never answers, until the client gives up. @since 0.1.0 */
export interface HangReply {
  readonly _tag: "Hang"
}

/** Destroys the socket before any response byte, after `afterMillis`. @since 0.1.0 */
export interface ResetReply {
  readonly _tag: "Reset"
  readonly afterMillis: number
}

/** @since 0.1.0 */
export type Reply = StreamReply | ErrorReply | RawReply | HangReply | ResetReply

/** The decoded request a script function answers. @since 0.1.0 */
export interface ScriptRequest {
  /** 0 for the first request the server received. */
  readonly index: number
  readonly body: WireRequest
  readonly headers: IncomingHttpHeaders
}

/**
 * Replies in order of arrival (a request past the end gets a 400 naming it), or
 * a function of each request. A script that throws answers 400 too.
 *
 * @since 0.1.0
 */
export type Script = ReadonlyArray<Reply> | ((request: ScriptRequest) => Reply)

/** Pacing and faults of a streamed reply. @since 0.1.0 */
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

/** A text block: one token per word, or `tokens` even pieces, or the given chunks. @since 0.1.0 */
export const textBlock = (
  text: string | ReadonlyArray<string>,
  options: { readonly tokens?: number } = {}
): TextBlock => ({
  type: "text",
  chunks: toChunks(text, options.tokens)
})

/**
 * The signature the fake gives a thinking block of this text (a hash of it). With `thinking` on, the fake checks
 * it, as the API does, on every thinking block a request sends back. @since 0.1.0
 */
export const signatureOf: (thinking: string) => string = signature

/** A thinking block, chunked like `textBlock`. @since 0.1.0 */
export const thinkingBlock = (
  text: string | ReadonlyArray<string>,
  options: { readonly tokens?: number } = {}
): ThinkingBlock => ({ type: "thinking", chunks: toChunks(text, options.tokens) })

/** A tool call; its input JSON streams in pieces of `chunkSize` characters (default 12). @since 0.1.0 */
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

/** A turn made of any blocks. @since 0.1.0 */
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

/** A text answer that ends the turn. @since 0.1.0 */
export const text = (
  content: string | ReadonlyArray<string>,
  options: StreamOptions & { readonly tokens?: number } = {}
): StreamReply => stream([textBlock(content, options)], options)

/** A tool call (after an optional text `preamble`) that stops with `tool_use`. @since 0.1.0 */
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

/** @since 0.1.0 */
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

/** An HTTP error with the API's error body; the error type follows the status unless given. @since 0.1.0 */
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

/** 429 `rate_limit_error`, with `retry-after` when given. @since 0.1.0 */
export const rateLimited = (retryAfter?: number | string, options: HttpErrorOptions = {}): ErrorReply =>
  httpError(429, { message: "Rate limited", ...(retryAfter === undefined ? {} : { retryAfter }), ...options })

/** 529 `overloaded_error`. @since 0.1.0 */
export const overloaded = (options: HttpErrorOptions = {}): ErrorReply =>
  httpError(529, { message: "Overloaded", ...options })

/** A verbatim response, e.g. `raw("<html>")` for a body that is not JSON. @since 0.1.0 */
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

/** A request the server never answers. @since 0.1.0 */
export const hang = (): HangReply => ({ _tag: "Hang" })

/** A connection the server resets before answering (for a reset mid-stream, use a `reset` fault). @since 0.1.0 */
export const resetConnection = (afterMillis = 0): ResetReply => ({ _tag: "Reset", afterMillis })
