/**
 * The session routes, for any @effect/platform `HttpRouter`:
 *
 * - `POST /sessions/:id/messages` `{ message, disconnect? }` (as `application/json`): starts a
 *   run of the agent on the session's conversation and streams its events as Server-Sent Events;
 * - `POST /sessions/:id/cancel`: Stop; cancels the run with `UserAbort` and answers
 *   what was cancelled (reason, tokens, writes rolled back);
 * - `GET /sessions/:id`: the session's status (running, or its last outcome);
 * - `GET /sessions/:id/events`: re-attaches to the run's events after
 *   `Last-Event-ID` (or `?after=`), missing nothing and repeating nothing.
 *
 * Every route asks `Auth` who calls; only the caller that started a session may
 * use it. When the client of a streaming start disconnects, the run is cancelled
 * with `ClientDisconnected` (policy `cancel`, the default) or goes on (`detach`).
 * Refusals are JSON (`RouteError`) and change nothing. The routes call
 * `SessionRuns` for the runs: `SessionRuns.layer()` runs them in this process,
 * with a cap of live runs past which a start gets 503 `Overloaded`.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { Agent, RunRegistry, SessionStore } from "@tether/core"
 * import { Auth, GracefulShutdown, SessionRoutes, SessionRuns } from "@tether/http"
 *
 * const assistant = Agent.make({ name: "assistant", system: "Be brief." })
 * const app = HttpRouter.empty.pipe(HttpRouter.mount("/api", SessionRoutes.router(assistant)))
 * const server = GracefulShutdown.serve(app).pipe(
 *   Layer.provide([SessionRuns.layer({ maxLiveRuns: 50 }), Auth.layerBearer({ "secret-token": "alice" })]),
 *   Layer.provide([RunRegistry.layer(), SessionStore.layerMemory()]),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 * // ...and a LanguageModel layer for the agent.
 * ```
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Schema, Stream } from "effect"
import type { Duration, Scope } from "effect"
import { CancelReason, RunEvent, SessionStore } from "@tether/core"
import type { Agent, LanguageModel } from "@tether/core"
import * as Auth from "./Auth.js"
import * as RouteError from "./RouteError.js"
import * as ServerSentEvents from "./ServerSentEvents.js"
import * as SessionRuns from "./SessionRuns.js"
import * as Body from "./internal/body.js"
import * as Json from "./internal/json.js"

/**
 * What one request may ask for.
 *
 * @since 0.1.0
 */
export interface Limits {
  /** Largest request body, in bytes (413 past it). Default 64 KiB. */
  readonly maxBodyBytes: number
  /**
   * How long the body of a request may take to arrive once its headers have (408 `RequestTimeout` past it, and the
   * connection is closed): a client trickling its body holds no connection for long. Default 10 seconds. (For the
   * headers themselves, set the server's deadlines: `@tether/node`'s `NodeServer.make`.)
   */
  readonly bodyTimeout: Duration.DurationInput
  /** Longest user message, in characters (422 past it). Default 8000. */
  readonly maxMessageLength: number
  /** Most runs one caller may have going at once, across its sessions (429 past it). Default 3. */
  readonly maxRunningPerCaller: number
  /**
   * Most runs one client address may have going at once, whatever callers it names (429 past it): where callers
   * are cheap to mint (a page that gives every visitor an identity), the per-caller limit alone does not hold one
   * client back. Default 12. Behind a reverse proxy every client has the proxy's address: set `clientAddress`.
   */
  readonly maxRunningPerAddress: number
}

/** @since 0.1.0 */
export const defaultLimits: Limits = {
  maxBodyBytes: 64 * 1024,
  bodyTimeout: "10 seconds",
  maxMessageLength: 8000,
  maxRunningPerCaller: 3,
  maxRunningPerAddress: 12
}

/** @since 0.1.0 */
export interface Options {
  readonly limits?: Partial<Limits> | undefined
  /**
   * A message for a session whose run is still going: `refuse` it (409, the
   * default) or `supersede` the run (cancelled with `Superseded`).
   */
  readonly onConflict?: "refuse" | "supersede" | undefined
  /** Cancels a run with `Timeout` when it runs longer. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Token ceiling of each run tree; defaults to the agent's. */
  readonly tokenBudget?: number | undefined
  /** Interval of the keep-alive comments of event streams. Default 15 seconds. */
  readonly keepAliveInterval?: Duration.DurationInput | undefined
  /**
   * The client address a request counts against for `maxRunningPerAddress`. Default: the socket's remote address.
   * Behind a trusted reverse proxy, read the header it sets (e.g. the last entry of `x-forwarded-for`).
   */
  readonly clientAddress?: ((request: HttpServerRequest.HttpServerRequest) => string | undefined) | undefined
}

/**
 * The body of `POST /sessions/:id/messages`.
 *
 * @since 0.1.0
 */
export const messageBody = (maxMessageLength: number) =>
  Schema.Struct({
    message: Schema.String.pipe(
      Schema.minLength(1, { message: () => "the message must not be empty" }),
      Schema.maxLength(maxMessageLength, {
        message: () => `the message must be at most ${maxMessageLength} characters`
      })
    ),
    disconnect: Schema.optional(SessionStore.DisconnectPolicy)
  })

/**
 * Session ids: letters, digits, `_` and `-`, 1 to 100 characters (the longest path parameter
 * @effect/platform's router matches by default).
 *
 * @since 0.1.0
 */
export const SessionId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,100}$/))

/**
 * What the routes need: `SessionRuns`, `Auth`, and the agent's model and services (but `Auth.CurrentCaller`, which
 * the routes provide to each run).
 *
 * @since 0.1.0
 */
export type Requirements<R> =
  SessionRuns.SessionRuns | Auth.Auth | LanguageModel.LanguageModel | Exclude<R, Auth.CurrentCaller>

interface Caller {
  readonly caller: Auth.CallerId
  readonly sessionId: string
}

const identify = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const caller = yield* Auth.authenticate(request)
  const { id } = yield* HttpRouter.params
  if (id === undefined || !Schema.is(SessionId)(id)) {
    return yield* new RouteError.BadRequest({ message: "the session id must be 1 to 100 letters, digits, _ or -" })
  }
  return { caller, sessionId: id } satisfies Caller
})

/**
 * An answer a server gives before its router sees the request: what `refuseWhenFull` returns.
 *
 * @since 0.1.0
 */
export interface EarlyRefusal {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * Answers a start (`POST <prefix>/sessions/:id/messages`) that `runs` would refuse for capacity, before any router
 * or body parsing: the same 503 `Overloaded`, body and `Retry-After` as the routes' own refusal, plus
 * `Connection: close` (its body is never read). Anything else, or a start with room for it, gets `undefined` and goes
 * on to the routes, which still check. A router's refusal of a burst costs the server's HTTP layer and router about
 * 2 ms of CPU per start; this costs a string match. For routes with `onConflict: "refuse"` (the default): a start that
 * supersedes its session's run takes the place that run gives back. Give it to the server, e.g. `@tether/node`'s
 * `NodeServer.make({ refuse })`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SessionRoutes, SessionRuns } from "@tether/http"
 *
 * const refuse = Effect.map(SessionRuns.SessionRuns, (runs) => SessionRoutes.refuseWhenFull(runs, { prefix: "/api" }))
 * ```
 *
 * @since 0.1.0
 */
export const refuseWhenFull = (
  runs: SessionRuns.Service,
  options: { readonly prefix?: string | undefined } = {}
): ((request: {
  readonly method?: string | undefined
  readonly url?: string | undefined
}) => EarlyRefusal | undefined) => {
  const prefix = (options.prefix ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  const start = new RegExp(`^${prefix}/sessions/[^/?#]+/messages(?:[?#]|$)`)
  const refusalOf = runs.capacityRefusal
  if (refusalOf === undefined) return () => undefined
  let cached: { readonly error: RouteError.Overloaded; readonly answer: EarlyRefusal } | undefined
  return (request) => {
    if (request.method !== "POST") return undefined
    const error = refusalOf()
    if (error === undefined || request.url === undefined || !start.test(request.url)) return undefined
    if (cached?.error !== error) {
      const response = RouteError.toResponse(error)
      cached = {
        error,
        answer: {
          status: response.status,
          headers: {
            ...response.headers,
            "content-type": "application/json",
            connection: "close"
          },
          body: JSON.stringify(RouteError.toJson(error))
        }
      }
    }
    return cached.answer
  }
}

/** Refusals as JSON; a store that failed is logged and answered with 503. */
const respond = <R>(
  effect: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    RouteError.RouteError | SessionStore.SessionStoreError,
    R
  >
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  Effect.catchAll(effect, (error) =>
    error._tag === "SessionStoreError"
      ? Effect.as(
          Effect.logError("the session store failed", error),
          RouteError.toResponse(
            new RouteError.StoreUnavailable({ message: "the session store is unavailable; try again" })
          )
        )
      : Effect.succeed(RouteError.toResponse(error))
  )

/**
 * Streams a run's events. When `cancel` is given, the run is cancelled with
 * `ClientDisconnected` if the events stop before the terminal event went out:
 * the client went away (the server interrupted the response with
 * `clientAbortFiberId`) while the events streamed (the response's
 * `onInterrupt`, first thing, or the events' own finalizer), or even before
 * (the request scope's finalizer).
 */
const eventStream = (
  run: { readonly sessionId: string; readonly runId: string; readonly events: Stream.Stream<RunEvent.RunEvent> },
  options: {
    readonly cancel: SessionRuns.Started["cancel"] | undefined
    readonly keepAliveInterval: Duration.DurationInput | undefined
  }
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function* () {
    let isTerminalSent = false
    let isCancelRequested = false
    const cancel = options.cancel
    const cancelIfUnfinished =
      cancel === undefined
        ? Effect.void
        : Effect.suspend(() => {
            if (isTerminalSent || isCancelRequested) return Effect.void
            isCancelRequested = true
            return cancel(new CancelReason.ClientDisconnected()).pipe(
              Effect.flatMap((outcome) =>
                Effect.logDebug("client disconnected before the run ended").pipe(
                  Effect.annotateLogs({
                    runId: run.runId,
                    sessionId: run.sessionId,
                    outcome: outcome._tag,
                    reason: outcome._tag === "Cancelled" ? outcome.reason._tag : "-"
                  })
                )
              )
            )
          })
    // The cancel goes out as soon as the response is interrupted while it waits for the next event (the client went
    // away mid-stream: `onInterrupt`, before anything unwinds), else as soon as the events are torn down (the client
    // went away while a write was under way); the request scope's finalizer covers a client gone before the stream
    // began.
    const events = run.events.pipe(
      Stream.tap((event) => Effect.sync(() => void (isTerminalSent ||= RunEvent.isTerminal(event)))),
      Stream.ensuring(cancelIfUnfinished)
    )
    yield* Effect.addFinalizer(() => cancelIfUnfinished)
    return ServerSentEvents.response(events, {
      keepAliveInterval: options.keepAliveInterval,
      onInterrupt: cancel === undefined ? undefined : cancelIfUnfinished,
      headers: { "x-tether-run-id": run.runId, "x-tether-session-id": run.sessionId }
    })
  })

/**
 * The routes of the sessions of `agent`. Mount them where you like
 * (`HttpRouter.mount("/api", SessionRoutes.router(agent))`); they need
 * `SessionRuns` (e.g. `SessionRuns.layer()` over `RunRegistry` and `SessionStore`), `Auth` and what the agent needs.
 * Routers of several agents may share one `SessionRuns`: the cap of live runs and the per-caller and per-address
 * counts are then shared too.
 *
 * @since 0.1.0
 */
export const router = <R>(agent: Agent.Agent<R>, options?: Options): HttpRouter.HttpRouter<never, Requirements<R>> => {
  const limits: Limits = { ...defaultLimits, ...options?.limits }
  const MessageBody = messageBody(limits.maxMessageLength)
  const onConflict = options?.onConflict ?? "refuse"
  const clientAddress =
    options?.clientAddress ??
    ((request: HttpServerRequest.HttpServerRequest) => Option.getOrUndefined(request.remoteAddress))

  const postMessage = respond(
    Effect.gen(function* () {
      const runs = yield* SessionRuns.SessionRuns
      // The start's place is taken here, as it arrives, and held for `runs.start`: past the capacity the answer costs no
      // authentication, no body and no store read, however many starts arrive at once. (A start that supersedes its
      // session's run takes the place that run gives back: it is not refused before it gets there.)
      if (onConflict === "refuse") yield* runs.checkCapacity
      const request = yield* HttpServerRequest.HttpServerRequest
      const who = yield* identify
      const body = yield* Effect.flatMap(
        Body.readJson(request, { limitBytes: limits.maxBodyBytes, timeout: limits.bodyTimeout }),
        (json) => Body.decode(MessageBody, json)
      )
      // From the start of the run to the finalizer that cancels it on a disconnect, nothing may
      // interrupt: a client gone in between would otherwise leave the run going unwatched.
      return yield* Effect.uninterruptible(
        Effect.flatMap(
          runs.start({
            ...who,
            agent,
            message: body.message,
            disconnect: body.disconnect,
            clientAddress: clientAddress(request),
            onConflict,
            timeout: options?.timeout,
            tokenBudget: options?.tokenBudget,
            maxRunningPerCaller: limits.maxRunningPerCaller,
            maxRunningPerAddress: limits.maxRunningPerAddress
          }),
          (started) =>
            eventStream(started, {
              cancel: started.disconnect === "cancel" ? started.cancel : undefined,
              keepAliveInterval: options?.keepAliveInterval
            })
        )
      )
    })
  )

  const cancel = respond(
    Effect.gen(function* () {
      const who = yield* identify
      const runs = yield* SessionRuns.SessionRuns
      const cancelled = yield* runs.cancel({ ...who, reason: new CancelReason.UserAbort() })
      return HttpServerResponse.unsafeJson({
        sessionId: cancelled.sessionId,
        runId: cancelled.runId,
        wasRunning: cancelled.wasRunning,
        outcome: Json.outcome(cancelled.outcome)
      })
    })
  )

  const status = respond(
    Effect.gen(function* () {
      const who = yield* identify
      const runs = yield* SessionRuns.SessionRuns
      const status = yield* runs.status(who)
      const common = { sessionId: status.sessionId, disconnect: status.disconnect, messages: status.messages }
      switch (status._tag) {
        case "Idle":
          return HttpServerResponse.unsafeJson({ ...common, status: "idle" })
        case "Ended":
          return HttpServerResponse.unsafeJson({
            ...common,
            status: "ended",
            runId: status.runId,
            outcome: Json.outcome(status.outcome)
          })
        case "Running":
          return HttpServerResponse.unsafeJson({
            ...common,
            status: "running",
            runId: status.runId,
            tokensUsed: status.tokens.used,
            tally: status.tokens.tally,
            reservedInFlight: status.tokens.reservedInFlight
          })
      }
    })
  )

  const events = respond(
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const who = yield* identify
      const after = yield* ServerSentEvents.resumeAfter(request)
      const runs = yield* SessionRuns.SessionRuns
      const attached = yield* runs.attach({ ...who, after })
      return yield* eventStream(attached, { cancel: undefined, keepAliveInterval: options?.keepAliveInterval })
    })
  )

  return HttpRouter.empty.pipe(
    HttpRouter.post("/sessions/:id/messages", postMessage),
    HttpRouter.post("/sessions/:id/cancel", cancel),
    HttpRouter.get("/sessions/:id", status),
    HttpRouter.get("/sessions/:id/events", events)
  )
}
