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
 * Refusals are JSON (`RouteError`) and change nothing.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServer } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { Agent, RunRegistry, SessionStore } from "@tether/core"
 * import { Auth, GracefulShutdown, SessionRoutes } from "@tether/http"
 *
 * const assistant = Agent.make({ name: "assistant", system: "Be brief." })
 * const app = HttpRouter.empty.pipe(HttpRouter.mount("/api", SessionRoutes.router(assistant)))
 * const server = GracefulShutdown.serve(app).pipe(
 *   Layer.provide([RunRegistry.layer(), SessionStore.layerMemory(), Auth.layerBearer({ "secret-token": "alice" })]),
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
import { CancelReason, RunEvent, RunRegistry, SessionStore } from "@tether/core"
import type { Agent, AgentRun, LanguageModel } from "@tether/core"
import * as Auth from "./Auth.js"
import * as RouteError from "./RouteError.js"
import * as ServerSentEvents from "./ServerSentEvents.js"
import * as AddressLimit from "./internal/addressLimit.js"
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
 * What the routes need: the registry, the store, `Auth`, and the agent's model and services (but `Auth.CurrentCaller`,
 * which the routes provide to each run).
 *
 * @since 0.1.0
 */
export type Requirements<R> =
  | RunRegistry.RunRegistry
  | SessionStore.SessionStore
  | Auth.Auth
  | LanguageModel.LanguageModel
  | Exclude<R, Auth.CurrentCaller>

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

const notFound = (sessionId: string) =>
  new RouteError.SessionNotFound({ sessionId, message: `no session ${sessionId}` })

/** The caller's own session, or 404 / 403. */
const ownSession = ({ caller, sessionId }: Caller) =>
  Effect.gen(function* () {
    const store = yield* SessionStore.SessionStore
    const session = yield* store.get(sessionId)
    if (Option.isNone(session)) return yield* notFound(sessionId)
    if (session.value.owner !== caller) {
      return yield* new RouteError.Forbidden({ sessionId, message: `session ${sessionId} belongs to another caller` })
    }
    return session.value
  })

const latestRun = (session: SessionStore.Session) =>
  Effect.flatMap(RunRegistry.RunRegistry, (registry) => registry.get(session.id)).pipe(
    Effect.flatMap(
      Option.match({
        onNone: () => Effect.fail(notFound(session.id)),
        onSome: Effect.succeed
      })
    )
  )

const isRunning = (run: AgentRun.AgentRun) => Effect.map(run.poll, Option.isNone)

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
 * Streams a run's events. When `cancelOnDisconnect`, the request's scope
 * cancels the run with `ClientDisconnected` if it closes before the terminal
 * event went out: the client went away (the server interrupted the response
 * with `clientAbortFiberId`) while the events streamed, or even before.
 */
const eventStream = (
  run: AgentRun.AgentRun,
  options: {
    readonly after: Option.Option<number>
    readonly cancelOnDisconnect: boolean
    readonly keepAliveInterval: Duration.DurationInput | undefined
  }
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function* () {
    let isTerminalSent = false
    const events = Option.match(options.after, { onNone: () => run.events, onSome: run.eventsAfter }).pipe(
      Stream.tap((event) => Effect.sync(() => void (isTerminalSent ||= RunEvent.isTerminal(event))))
    )
    if (options.cancelOnDisconnect) {
      yield* Effect.addFinalizer(() =>
        isTerminalSent
          ? Effect.void
          : run.cancel(new CancelReason.ClientDisconnected()).pipe(
              Effect.flatMap((outcome) =>
                Effect.logInfo("client disconnected before the run ended").pipe(
                  Effect.annotateLogs({
                    runId: run.id,
                    sessionId: run.sessionId ?? "",
                    outcome: outcome._tag,
                    reason: outcome._tag === "Cancelled" ? outcome.reason._tag : "-"
                  })
                )
              )
            )
      )
    }
    return ServerSentEvents.response(events, {
      keepAliveInterval: options.keepAliveInterval,
      headers: { "x-tether-run-id": run.id, "x-tether-session-id": run.sessionId ?? "" }
    })
  })

const runningSessionsOf = (caller: Auth.CallerId) =>
  Effect.gen(function* () {
    const store = yield* SessionStore.SessionStore
    const registry = yield* RunRegistry.RunRegistry
    const sessions = yield* store.ownedBy(caller)
    const running = yield* Effect.filter(sessions, (session) =>
      Effect.flatMap(registry.get(session.id), Option.match({ onNone: () => Effect.succeed(false), onSome: isRunning }))
    )
    return running.map((session) => session.id)
  })

/**
 * The routes of the sessions of `agent`. Mount them where you like
 * (`HttpRouter.mount("/api", SessionRoutes.router(agent))`); they need
 * `RunRegistry`, `SessionStore`, `Auth` and what the agent needs.
 *
 * @since 0.1.0
 */
export const router = <R>(agent: Agent.Agent<R>, options?: Options): HttpRouter.HttpRouter<never, Requirements<R>> => {
  const limits: Limits = { ...defaultLimits, ...options?.limits }
  const MessageBody = messageBody(limits.maxMessageLength)
  const onConflict = options?.onConflict ?? "refuse"
  // Checking the limits and starting the run happen under one lock, so two concurrent
  // starts cannot both pass a check that only one of them may pass.
  const startLock = Effect.unsafeMakeSemaphore(1)
  const runsByAddress = AddressLimit.make(limits.maxRunningPerAddress)
  const clientAddress =
    options?.clientAddress ??
    ((request: HttpServerRequest.HttpServerRequest) => Option.getOrUndefined(request.remoteAddress))

  const startRun = (who: Caller, address: string | undefined, body: typeof MessageBody.Type) =>
    Effect.gen(function* () {
      const store = yield* SessionStore.SessionStore
      const registry = yield* RunRegistry.RunRegistry
      const existing = yield* store.get(who.sessionId)
      if (Option.isSome(existing) && existing.value.owner !== who.caller) {
        return yield* new RouteError.Forbidden({
          sessionId: who.sessionId,
          message: `session ${who.sessionId} belongs to another caller`
        })
      }
      // A run the registry still holds for a session the store no longer knows (forgotten, see
      // `SessionStore.MemoryOptions.retainIdle`) belongs to whoever had the id before: its transcript must not
      // become this caller's history. (If it is still going, the start is refused below.)
      const previous = Option.isSome(existing) ? yield* registry.get(who.sessionId) : Option.none<AgentRun.AgentRun>()
      const busy = Option.isSome(previous) && (yield* isRunning(previous.value)) ? previous : Option.none()
      if (Option.isSome(busy) && onConflict === "refuse") {
        return yield* new RouteError.SessionBusy({
          sessionId: who.sessionId,
          runId: busy.value.id,
          message: `session ${who.sessionId} has a run going; stop it or wait for it to end`
        })
      }
      const others = (yield* runningSessionsOf(who.caller)).filter((id) => id !== who.sessionId)
      if (others.length >= limits.maxRunningPerCaller) {
        return yield* new RouteError.TooManyRuns({
          limit: limits.maxRunningPerCaller,
          message: `at most ${limits.maxRunningPerCaller} runs may go at once per caller`
        })
      }
      if (address !== undefined) {
        const tooMany = runsByAddress.check(address, who.sessionId, yield* registry.running)
        if (tooMany !== undefined) return yield* tooMany
      }
      const history = yield* Option.match(previous, {
        onNone: () => Effect.succeed(Option.match(existing, { onNone: () => [], onSome: (s) => s.transcript })),
        onSome: (run) =>
          Effect.map(
            Option.isSome(busy) ? run.cancel(new CancelReason.Superseded()) : run.outcome,
            (outcome) => outcome.transcript
          )
      })
      const disconnect =
        body.disconnect ?? Option.match(existing, { onNone: () => "cancel" as const, onSome: (s) => s.disconnect })
      const run = yield* registry
        .start(
          who.sessionId,
          agent,
          { history, message: body.message },
          { onConflict: "refuse", timeout: options?.timeout, tokenBudget: options?.tokenBudget }
        )
        .pipe(
          Effect.provideService(Auth.CurrentCaller, who.caller),
          Effect.catchTag(
            "SessionBusyError",
            (error) =>
              new RouteError.SessionBusy({
                sessionId: error.sessionId,
                runId: error.runId,
                message: `session ${error.sessionId} has a run going`
              })
          )
        )
      if (address !== undefined) runsByAddress.record(address, who.sessionId)
      // A run whose session could not be saved has nobody to stream to or stop it: it is cancelled at once.
      yield* store
        .save({ id: who.sessionId, owner: who.caller, disconnect, transcript: history, runId: run.id })
        .pipe(Effect.tapError(() => run.cancel(new CancelReason.Interrupted())))
      yield* store.follow(who.sessionId, run)
      return { run, disconnect }
    })

  const postMessage = respond(
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const who = yield* identify
      const body = yield* Effect.flatMap(
        Body.readJson(request, { limitBytes: limits.maxBodyBytes, timeout: limits.bodyTimeout }),
        (json) => Body.decode(MessageBody, json)
      )
      // From the start of the run to the finalizer that cancels it on a disconnect, nothing may
      // interrupt: a client gone in between would otherwise leave the run going unwatched.
      return yield* Effect.uninterruptible(
        Effect.flatMap(startLock.withPermits(1)(startRun(who, clientAddress(request), body)), ({ disconnect, run }) =>
          eventStream(run, {
            after: Option.none(),
            cancelOnDisconnect: disconnect === "cancel",
            keepAliveInterval: options?.keepAliveInterval
          })
        )
      )
    })
  )

  const cancel = respond(
    Effect.gen(function* () {
      const who = yield* identify
      const run = yield* Effect.flatMap(ownSession(who), latestRun)
      const wasRunning = yield* isRunning(run)
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      return HttpServerResponse.unsafeJson({
        sessionId: who.sessionId,
        runId: run.id,
        wasRunning,
        outcome: Json.outcome(outcome)
      })
    })
  )

  const status = respond(
    Effect.gen(function* () {
      const who = yield* identify
      const session = yield* ownSession(who)
      const registry = yield* RunRegistry.RunRegistry
      const latest = yield* registry.get(session.id)
      const common = { sessionId: session.id, disconnect: session.disconnect, messages: session.transcript.length }
      if (Option.isNone(latest)) return HttpServerResponse.unsafeJson({ ...common, status: "idle" })
      const run = latest.value
      const outcome = yield* run.poll
      if (Option.isSome(outcome)) {
        return HttpServerResponse.unsafeJson({
          ...common,
          messages: outcome.value.transcript.length,
          status: "ended",
          runId: run.id,
          outcome: Json.outcome(outcome.value)
        })
      }
      const tokens = yield* run.tokens
      return HttpServerResponse.unsafeJson({
        ...common,
        status: "running",
        runId: run.id,
        tokensUsed: tokens.used,
        tally: tokens.tally,
        reservedInFlight: tokens.reservedInFlight
      })
    })
  )

  const events = respond(
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const who = yield* identify
      const run = yield* Effect.flatMap(ownSession(who), latestRun)
      const after = yield* ServerSentEvents.resumeAfter(request)
      return yield* eventStream(run, {
        after,
        cancelOnDisconnect: false,
        keepAliveInterval: options?.keepAliveInterval
      })
    })
  )

  return HttpRouter.empty.pipe(
    HttpRouter.post("/sessions/:id/messages", postMessage),
    HttpRouter.post("/sessions/:id/cancel", cancel),
    HttpRouter.get("/sessions/:id", status),
    HttpRouter.get("/sessions/:id/events", events)
  )
}
