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
import type { Script } from "./internal/fakeAnthropicScript.js"
import type { WireRequest } from "./internal/fakeAnthropicWire.js"

export type { WireRequest } from "./internal/fakeAnthropicWire.js"

/** The script: replies, blocks, faults and their constructors. @since 0.1.0 */
export * from "./internal/fakeAnthropicScript.js"

/** The offline script, for a demo without a model. @since 0.1.0 */
export * from "./internal/fakeAnthropicOffline.js"

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
