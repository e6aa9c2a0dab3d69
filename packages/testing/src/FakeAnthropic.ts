/**
 * A fake Anthropic Messages API: a real `node:http` server on 127.0.0.1 that
 * answers `POST /v1/messages` from a script, as JSON or as Server-Sent Events
 * in the real API's shape, with pacing, stalls, HTTP errors and stream faults.
 * It records every request: its body, when it started, when the client closed
 * the connection, and when each token was written.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeAnthropic } from "@tether/testing"
 *
 * const program = Effect.gen(function* () {
 *   const fake = yield* FakeAnthropic.make([
 *     FakeAnthropic.overloaded(),
 *     FakeAnthropic.text("Hello there", { interval: 50 })
 *   ])
 *   // point the SDK at fake.url, then:
 *   const [first] = yield* fake.awaitRequests(1)
 *   return first.tokensWritten
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import type { IncomingHttpHeaders } from "node:http"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { FakeServer } from "./internal/fakeAnthropicServer.js"
import { signatureOf as signature } from "./internal/fakeAnthropicThinking.js"
import type { WireRequest } from "./internal/fakeAnthropicWire.js"

export type { WireRequest } from "./internal/fakeAnthropicWire.js"

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/**
 * What the server saw of one request. Times are `performance.now()` of the
 * process running the fake.
 *
 * @since 0.1.0
 */
export interface RecordedRequest {
  readonly index: number
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly rawBody: string
  /** The decoded body; `undefined` when it was not a valid Messages request (see `issue`). */
  readonly request: WireRequest | undefined
  readonly issue: string | undefined
  readonly isStream: boolean
  readonly startedAt: number
  /** The status written, if any. */
  readonly status: number | undefined
  /** When the connection closed before the response ended (by the client, or by a scripted reset). */
  readonly closedAt: number | undefined
  readonly finishedAt: number | undefined
  readonly isFinished: boolean
  readonly isResetByServer: boolean
  /** Content deltas written so far, and when each was written. */
  readonly tokensWritten: number
  readonly tokenTimes: ReadonlyArray<number>
  /** `ping` events written so far. */
  readonly pingsWritten: number
  /** Bytes of a streamed body written so far (an oversized line or event is written only as fast as it is read). */
  readonly bytesWritten: number
}

/** A snapshot of the server, given to `waitUntil` predicates. @since 0.1.0 */
export interface State {
  /** A copy of every record, made when read: with thousands of requests, prefer `requestCount` and `request`. */
  readonly requests: ReadonlyArray<RecordedRequest>
  readonly requestCount: number
  /** A copy of one record. */
  readonly request: (index: number) => RecordedRequest | undefined
  readonly openConnections: number
  /** Responses started and not yet ended. */
  readonly inFlight: number
}

/** How many tokens `record` wrote strictly after `instant` (a `performance.now()` time). @since 0.1.0 */
export const tokensWrittenAfter = (record: RecordedRequest, instant: number): number =>
  record.tokenTimes.filter((time) => time > instant).length

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/** The running fake, for Effect code. Waits end when the condition holds; add `Effect.timeout` to bound them. @since 0.1.0 */
export interface Service {
  /** The base URL to give the SDK (`baseURL`), e.g. `http://127.0.0.1:53122`. */
  readonly url: string
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  readonly requestCount: Effect.Effect<number>
  /** Sockets open right now (kept-alive idle ones count). */
  readonly openConnections: Effect.Effect<number>
  readonly inFlight: Effect.Effect<number>
  readonly awaitRequests: (count: number) => Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** Until request `index` wrote at least `count` tokens. */
  readonly awaitTokens: (index: number, count: number) => Effect.Effect<RecordedRequest>
  /** Until request `index` finished or its connection closed. */
  readonly awaitEnded: (index: number) => Effect.Effect<RecordedRequest>
  /** Until at most `count` sockets are open. */
  readonly awaitOpenConnections: (count: number) => Effect.Effect<number>
  readonly waitUntil: <A>(select: (state: State) => A | undefined) => Effect.Effect<A>
}

/** The fake as a service, for `FakeAnthropic.layer`. @since 0.1.0 */
export class FakeAnthropic extends Context.Tag("@tether/testing/FakeAnthropic")<FakeAnthropic, Service>() {}

const ended = (index: number) => (state: State) => {
  const record = state.request(index)
  return record !== undefined && (record.isFinished || record.closedAt !== undefined) ? record : undefined
}

const selectors = {
  requests: (count: number) => (state: State) => (state.requestCount >= count ? state.requests : undefined),
  tokens: (index: number, count: number) => (state: State) => {
    const record = state.request(index)
    return record !== undefined && record.tokensWritten >= count ? record : undefined
  },
  ended,
  openConnections: (count: number) => (state: State) =>
    state.openConnections <= count ? state.openConnections : undefined
}

const waitFor = <A>(server: FakeServer, select: (state: State) => A | undefined): Effect.Effect<A> =>
  Effect.async<A>((resume) => {
    let isDone = false
    const check = () => {
      if (isDone) return
      const value = select(server.state())
      if (value === undefined) return
      isDone = true
      unsubscribe()
      resume(Effect.succeed(value))
    }
    const unsubscribe = server.subscribe(check)
    check()
    return Effect.sync(() => {
      isDone = true
      unsubscribe()
    })
  })

const toService = (server: FakeServer): Service => ({
  url: server.url,
  requests: Effect.sync(() => server.requests),
  requestCount: Effect.sync(() => server.requests.length),
  openConnections: Effect.sync(() => server.openConnections),
  inFlight: Effect.sync(() => server.inFlight),
  awaitRequests: (count) => waitFor(server, selectors.requests(count)),
  awaitTokens: (index, count) => waitFor(server, selectors.tokens(index, count)),
  awaitEnded: (index) => waitFor(server, selectors.ended(index)),
  awaitOpenConnections: (count) => waitFor(server, selectors.openConnections(count)),
  waitUntil: (select) => waitFor(server, select)
})

/**
 * Starts the fake on a free port of 127.0.0.1. Closing the scope stops it and
 * destroys its open sockets.
 *
 * @since 0.1.0
 */
export const make = (script: Script): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => FakeServer.start(script)),
    (server) => Effect.promise(() => server.close())
  ).pipe(Effect.map(toService))

/** The fake as a layer. @since 0.1.0 */
export const layer = (script: Script): Layer.Layer<FakeAnthropic> => Layer.scoped(FakeAnthropic, make(script))

/** The running fake, for Promise code (benchmarks, example servers). @since 0.1.0 */
export interface Handle {
  readonly url: string
  readonly requests: ReadonlyArray<RecordedRequest>
  readonly requestCount: number
  readonly openConnections: number
  readonly inFlight: number
  readonly awaitRequests: (count: number) => Promise<ReadonlyArray<RecordedRequest>>
  readonly waitUntil: <A>(select: (state: State) => A | undefined) => Promise<A>
  /** Stops listening and destroys the open sockets. */
  readonly close: () => Promise<void>
}

/** Starts the fake without Effect; call `close()` when done. @since 0.1.0 */
export const start = async (script: Script): Promise<Handle> => {
  const server = await FakeServer.start(script)
  const waitUntil = <A>(select: (state: State) => A | undefined) => Effect.runPromise(waitFor(server, select))
  return {
    url: server.url,
    get requests() {
      return server.requests
    },
    get requestCount() {
      return server.requests.length
    },
    get openConnections() {
      return server.openConnections
    },
    get inFlight() {
      return server.inFlight
    },
    awaitRequests: (count) => waitUntil(selectors.requests(count)),
    waitUntil,
    close: () => server.close()
  }
}

// ---------------------------------------------------------------------------
// Offline script
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export interface OfflineOptions {
  /** Milliseconds between words (default 60). */
  readonly interval?: number
  /** Call the first offered tool before answering a user's text (default true). */
  readonly useTools?: boolean
}

const offlineFiller =
  "This answer comes from FakeAnthropic because no ANTHROPIC_API_KEY is set. It streams one word at a " +
  "time so you can watch it arrive, and press Stop at any moment: the request to the model ends at once " +
  "and nothing more is written."

const shorten = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

const sampleInput = (schema: Readonly<Record<string, unknown>>, userText: string): Record<string, unknown> => {
  const properties = (schema["properties"] ?? {}) as Record<string, { type?: unknown; enum?: ReadonlyArray<unknown> }>
  const required = Array.isArray(schema["required"]) ? (schema["required"] as Array<string>) : Object.keys(properties)
  const sample = (property: { type?: unknown; enum?: ReadonlyArray<unknown> } | undefined): unknown => {
    if (property?.enum !== undefined && property.enum.length > 0) return property.enum[0]
    switch (property?.type) {
      case "number":
      case "integer":
        return 1
      case "boolean":
        return true
      case "array":
        return []
      case "object":
        return {}
      default:
        return userText
    }
  }
  return Object.fromEntries(required.map((name) => [name, sample(properties[name])]))
}

/**
 * A script for demos without an API key: any request gets a plausible streamed
 * text reply; when tools are offered and the last message is the user's text,
 * the first tool is called first (with an input made from its schema).
 *
 * @since 0.1.0
 */
export const offline =
  (options: OfflineOptions = {}): ((request: ScriptRequest) => Reply) =>
  (request) => {
    const interval = options.interval ?? 60
    const last = request.body.messages.at(-1)
    const blocks = last === undefined ? [] : typeof last.content === "string" ? [] : last.content
    const userText =
      typeof last?.content === "string"
        ? last.content
        : blocks.flatMap((block) => (block.type === "text" ? [block.text] : [])).join(" ")
    const results = blocks.flatMap((block) => (block.type === "tool_result" ? [block] : []))
    if (results.length > 0) {
      const answer = results.map((result) => (typeof result.content === "string" ? result.content : "…")).join("; ")
      return text(`The tool answered: ${shorten(answer, 120)}. ${offlineFiller}`, { interval })
    }
    const tool = request.body.tools?.[0]
    if ((options.useTools ?? true) && tool !== undefined && last?.role === "user") {
      return toolUse(tool.name, sampleInput(tool.input_schema, userText), {
        preamble: `Let me use ${tool.name} for that. `,
        interval
      })
    }
    return text(`You said: "${shorten(userText, 80)}". ${offlineFiller}`, { interval })
  }
