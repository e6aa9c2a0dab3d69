/**
 * A fake Anthropic Messages API: a real `node:http` server on 127.0.0.1 that
 * answers `POST /v1/messages` from a script, as JSON or as Server-Sent Events
 * in the real API's shape, with pacing, stalls, HTTP errors and stream faults.
 * It records every request (`fake.requests`, a `RecordedRequest` each): its
 * decoded body, the status it got, when it started, when the client closed the
 * connection, and when each token was written. Those records are what a test
 * asserts on: what the model was sent, and that a cancelled run closed its socket.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agent, AgentRun, LanguageModel } from "@tether/core"
 * import { AnthropicModel } from "@tether/anthropic"
 * import { FakeAnthropic } from "@tether/testing"
 *
 * const program = Effect.gen(function* () {
 *   const fake = yield* FakeAnthropic.make([
 *     FakeAnthropic.overloaded(), // a 529 first: AnthropicModel retries it
 *     FakeAnthropic.text("Hello there")
 *   ])
 *   const model = yield* AnthropicModel.make({ apiKey: "test-key", baseURL: fake.url, retryBaseDelay: "10 millis" })
 *   const result = yield* AgentRun.run(Agent.make({ name: "greeter", system: "Be brief." }), "Say hello").pipe(
 *     Effect.provideService(LanguageModel.LanguageModel, model)
 *   )
 *   const [rejected, answered] = yield* fake.awaitRequests(2)
 *   return {
 *     text: result.text,
 *     statuses: [rejected?.status, answered?.status],
 *     system: answered?.request?.system,
 *     tokensWritten: answered?.tokensWritten
 *   }
 * }).pipe(Effect.scoped) // closing the scope stops the server
 *
 * console.log(await Effect.runPromise(program))
 * // { text: 'Hello there', statuses: [ 529, 200 ], system: 'Be brief.', tokensWritten: 2 }
 * ```
 *
 * @since 0.1.0
 */
import type { IncomingHttpHeaders } from "node:http"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { FakeServer } from "./internal/fakeAnthropicServer.js"
import type { Script } from "./internal/fakeAnthropicScript.js"
import type { WireRequest } from "./internal/fakeAnthropicWire.js"

export type {
  /**
   * A Messages API request body as the fake decodes it (`model`, `max_tokens`, `system`, `messages`, `tools`,
   * `stream`, `thinking`).
   *
   * @since 0.1.0
   * @category models
   */
  WireRequest
} from "./internal/fakeAnthropicWire.js"

// The script: replies, blocks, faults and their constructors (documented here, where the reference reads them).
export type {
  /**
   * A text block streamed as `chunks` (one `text_delta` each).
   *
   * @since 0.1.0
   * @category replies
   */
  TextBlock,
  /**
   * A thinking block streamed as `thinking_delta`s, closed by a `signature_delta`.
   *
   * @since 0.1.0
   * @category replies
   */
  ThinkingBlock,
  /**
   * A tool call whose input JSON streams as `input_json_delta`s (the first one `""`, as the API does).
   *
   * @since 0.1.0
   * @category replies
   */
  ToolUseBlock,
  /**
   * @since 0.1.0
   * @category replies
   */
  Block,
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
   * @category replies
   */
  Fault,
  /**
   * A successful turn, streamed when the request says `stream: true`, else sent as one JSON message.
   *
   * @since 0.1.0
   * @category replies
   */
  StreamReply,
  /**
   * An API error response: JSON body `{ type: "error", error: { type, message } }`.
   *
   * @since 0.1.0
   * @category replies
   */
  ErrorReply,
  /**
   * Any status, headers and body, verbatim (e.g. a 200 whose body is not JSON).
   *
   * @since 0.1.0
   * @category replies
   */
  RawReply,
  /**
   * Accepts the request and never answers, until the client gives up.
   *
   * @since 0.1.0
   * @category replies
   */
  HangReply,
  /**
   * Destroys the socket before any response byte, after `afterMillis`.
   *
   * @since 0.1.0
   * @category replies
   */
  ResetReply,
  /**
   * @since 0.1.0
   * @category replies
   */
  Reply,
  /**
   * The decoded request a script function answers.
   *
   * @since 0.1.0
   * @category replies
   */
  ScriptRequest,
  /**
   * Replies in order of arrival (a request past the end gets a 400 naming it), or
   * a function of each request. A script that throws answers 400 too.
   *
   * @since 0.1.0
   * @category replies
   */
  Script,
  /**
   * Pacing and faults of a streamed reply.
   *
   * @since 0.1.0
   * @category replies
   */
  StreamOptions,
  /**
   * @since 0.1.0
   * @category replies
   */
  HttpErrorOptions
} from "./internal/fakeAnthropicScript.js"

export {
  /**
   * A text block: one token per word, or `tokens` even pieces, or the given chunks.
   *
   * @since 0.1.0
   * @category replies
   */
  textBlock,
  /**
   * The signature the fake gives a thinking block of this text (a hash of it). With `thinking` on, the fake checks
   * it, as the API does, on every thinking block a request sends back.
   *
   * @since 0.1.0
   * @category replies
   */
  signatureOf,
  /**
   * A thinking block, chunked like `textBlock`.
   *
   * @since 0.1.0
   * @category replies
   */
  thinkingBlock,
  /**
   * A tool call; its input JSON streams in pieces of `chunkSize` characters (default 12).
   *
   * @since 0.1.0
   * @category replies
   */
  toolUseBlock,
  /**
   * A turn made of any blocks.
   *
   * @since 0.1.0
   * @category replies
   */
  stream,
  /**
   * A text answer that ends the turn.
   *
   * @since 0.1.0
   * @category replies
   */
  text,
  /**
   * A tool call (after an optional text `preamble`) that stops with `tool_use`.
   *
   * @since 0.1.0
   * @category replies
   */
  toolUse,
  /**
   * An HTTP error with the API's error body; the error type follows the status unless given.
   *
   * @since 0.1.0
   * @category replies
   */
  httpError,
  /**
   * 429 `rate_limit_error`, with `retry-after` when given.
   *
   * @since 0.1.0
   * @category replies
   */
  rateLimited,
  /**
   * 529 `overloaded_error`.
   *
   * @since 0.1.0
   * @category replies
   */
  overloaded,
  /**
   * A verbatim response, e.g. `raw("<html>")` for a body that is not JSON.
   *
   * @since 0.1.0
   * @category replies
   */
  raw,
  /**
   * A request the server never answers.
   *
   * @since 0.1.0
   * @category replies
   */
  hang,
  /**
   * A connection the server resets before answering (for a reset mid-stream, use a `reset` fault).
   *
   * @since 0.1.0
   * @category replies
   */
  resetConnection
} from "./internal/fakeAnthropicScript.js"

// The offline script, for a demo without a model.
export type {
  /**
   * @since 0.1.0
   * @category replies
   */
  OfflineOptions
} from "./internal/fakeAnthropicOffline.js"

export {
  /**
   * A script for demos without an API key: any request gets a plausible streamed
   * text reply; when tools are offered and the last message is the user's text,
   * the first tool is called first (with an input made from its schema).
   *
   * @since 0.1.0
   * @category replies
   */
  offline
} from "./internal/fakeAnthropicOffline.js"

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/**
 * What the server saw of one request (`fake.requests`, `awaitRequests`, `awaitEnded`...). Times are
 * `performance.now()` of the process running the fake, so a test in the same process compares them with its own
 * `performance.now()`: `closedAt` set, and no token written after the cancel, is the proof that a cancelled run
 * closed its socket at once.
 *
 * @example
 * ```ts
 * import { Effect, Fiber } from "effect"
 * import { Agent, AgentRun, LanguageModel } from "@tether/core"
 * import { AnthropicModel } from "@tether/anthropic"
 * import { FakeAnthropic } from "@tether/testing"
 *
 * const program = Effect.gen(function* () {
 *   // Ten words, 200 ms apart: the run is cancelled after the second one.
 *   const fake = yield* FakeAnthropic.make([
 *     FakeAnthropic.text("one two three four five six seven eight nine ten", { interval: 200 })
 *   ])
 *   const model = yield* AnthropicModel.make({ apiKey: "test-key", baseURL: fake.url })
 *   const run = yield* AgentRun.run(Agent.make({ name: "counter" }), "Count to ten").pipe(
 *     Effect.provideService(LanguageModel.LanguageModel, model),
 *     Effect.fork
 *   )
 *   yield* fake.awaitTokens(0, 2)
 *   const cancelledAt = performance.now()
 *   yield* Fiber.interrupt(run)
 *   const record = yield* fake.awaitEnded(0)
 *   return {
 *     closed: record.closedAt !== undefined, // the client closed the connection before the response ended
 *     finished: record.isFinished,
 *     tokensAfterCancel: FakeAnthropic.tokensWrittenAfter(record, cancelledAt),
 *     maxTokens: record.request?.max_tokens
 *   }
 * }).pipe(Effect.scoped)
 *
 * console.log(await Effect.runPromise(program))
 * // { closed: true, finished: false, tokensAfterCancel: 0, maxTokens: 1024 }
 * ```
 *
 * @since 0.1.0
 * @category records
 */
export interface RecordedRequest {
  /** 0 for the first request the server received. */
  readonly index: number
  readonly method: string
  /** E.g. `/v1/messages`. */
  readonly path: string
  /** As received: `x-api-key`, `anthropic-version`, ... */
  readonly headers: IncomingHttpHeaders
  /** The body as received. */
  readonly rawBody: string
  /**
   * The decoded body (`model`, `max_tokens`, `system`, `messages`, `tools`...); `undefined` when it was not a
   * valid Messages request (see `issue`).
   */
  readonly request: WireRequest | undefined
  /** Why the request was answered 400 (or 401 without a key), if it was. */
  readonly issue: string | undefined
  /** The request asked for Server-Sent Events (`stream: true`). */
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

/**
 * A snapshot of the server, given to `waitUntil` predicates.
 *
 * @since 0.1.0
 * @category records
 */
export interface State {
  /**
   * A copy of every record kept (all of them unless `keepRequests` is set), made when read: with thousands of
   * requests, prefer `requestCount` and `request`.
   */
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Every request received, kept or not. */
  readonly requestCount: number
  /** A copy of one record; `undefined` if not received yet, or no longer kept. */
  readonly request: (index: number) => RecordedRequest | undefined
  readonly openConnections: number
  /** Responses started and not yet ended. */
  readonly inFlight: number
}

/**
 * How many tokens `record` wrote strictly after `instant` (a `performance.now()` time).
 *
 * @since 0.1.0
 * @category records
 */
export const tokensWrittenAfter = (record: RecordedRequest, instant: number): number =>
  record.tokenTimes.filter((time) => time > instant).length

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/**
 * Options of the fake server.
 *
 * @since 0.1.0
 * @category servers
 */
export interface Options {
  /**
   * How many request records to keep, the latest: a fake that serves for a long time (an example server's offline
   * model) keeps a few instead of every request it ever got (each holds the request's body and the time of every
   * token written). `requestCount` and record indices still count every request. Default: all of them.
   */
  readonly keepRequests?: number | undefined
}

/**
 * The running fake, for Effect code. Waits end when the condition holds; add `Effect.timeout` to bound them.
 *
 * @since 0.1.0
 * @category servers
 */
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

/**
 * The fake as a service, for `FakeAnthropic.layer`.
 *
 * @since 0.1.0
 * @category servers
 */
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
  requestCount: Effect.sync(() => server.requestCount),
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
 * @category servers
 */
export const make = (script: Script, options?: Options): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => FakeServer.start(script, options?.keepRequests)),
    (server) => Effect.promise(() => server.close())
  ).pipe(Effect.map(toService))

/**
 * The fake as a layer.
 *
 * @since 0.1.0
 * @category servers
 */
export const layer = (script: Script, options?: Options): Layer.Layer<FakeAnthropic> =>
  Layer.scoped(FakeAnthropic, make(script, options))

/**
 * The running fake, for Promise code (benchmarks, example servers).
 *
 * @since 0.1.0
 * @category servers
 */
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

/**
 * Starts the fake without Effect; call `close()` when done.
 *
 * @since 0.1.0
 * @category servers
 */
export const start = async (script: Script, options?: Options): Promise<Handle> => {
  const server = await FakeServer.start(script, options?.keepRequests)
  const waitUntil = <A>(select: (state: State) => A | undefined) => Effect.runPromise(waitFor(server, select))
  return {
    url: server.url,
    get requests() {
      return server.requests
    },
    get requestCount() {
      return server.requestCount
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
