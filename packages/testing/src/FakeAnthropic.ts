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

/** The script: replies, blocks, faults and their constructors. @since 0.1.0 */
export * from "./internal/fakeAnthropicScript.js"

/** The offline script, for a demo without a model. @since 0.1.0 */
export * from "./internal/fakeAnthropicOffline.js"

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
  /** A copy of every record, made when read: with thousands of requests, prefer `requestCount` and `request`. */
  readonly requests: ReadonlyArray<RecordedRequest>
  readonly requestCount: number
  /** A copy of one record. */
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
 * @category servers
 */
export const make = (script: Script): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => FakeServer.start(script)),
    (server) => Effect.promise(() => server.close())
  ).pipe(Effect.map(toService))

/**
 * The fake as a layer.
 *
 * @since 0.1.0
 * @category servers
 */
export const layer = (script: Script): Layer.Layer<FakeAnthropic> => Layer.scoped(FakeAnthropic, make(script))

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
