/**
 * The runs of sessions, as the session routes use them: start a run of a session (admitted or refused at once),
 * cancel a session's run with a reason, read a session's status, and attach to a run's events after a sequence
 * number. Every operation names the session and the caller; a session belongs to the caller that first started it,
 * and only that caller may use it.
 *
 * The interface is about sessions and runs, not about where they run: `SessionRuns.layer` runs them in this process
 * (over `RunRegistry` and `SessionStore`); another implementation may run them elsewhere (a cluster), and the routes
 * do not change.
 *
 * What every implementation guarantees:
 *
 * - **Admission.** A start over the capacity of the runs (`maxLiveRuns` of the local layer) fails at once with
 *   `RouteError.Overloaded` (503 with `Retry-After`), or waits in a bounded queue for at most a deadline, then fails
 *   the same way: never a hang.
 * - **Independence.** Starts of one session are serialised; starts of different sessions never wait on each other.
 *   `cancel`, `status` and `attach` never wait behind starts.
 * - **Limits without reads.** The runs a caller (or a client address) has going are counted as runs start and end,
 *   never by reading sessions: of two concurrent starts past a limit, exactly one is admitted.
 * - **Refusals change nothing.** A refused start claims no session and starts no run.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { Agent, CancelReason, RunRegistry, SessionStore } from "@tether/core"
 * import { Auth, SessionRuns } from "@tether/http"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const agent = Agent.make({ name: "assistant" })
 * const program = Effect.gen(function* () {
 *   const runs = yield* SessionRuns.SessionRuns
 *   const caller = Auth.CallerId.make("alice")
 *   const started = yield* runs.start({ sessionId: "s-1", caller, agent, message: "Hello" })
 *   const stopped = yield* runs.cancel({ sessionId: "s-1", caller, reason: new CancelReason.UserAbort() })
 *   const last = yield* Stream.runLast(started.events)
 *   return [stopped.outcome._tag, last] // ["Cancelled", Some(RunCancelled)]
 * })
 *
 * const services = SessionRuns.layer({ maxLiveRuns: 100 }).pipe(
 *   Layer.provideMerge(Layer.mergeAll(RunRegistry.layer(), SessionStore.layerMemory())),
 *   Layer.provideMerge(ScriptedModel.layer([ScriptedModel.text("Hi!", { chunks: 3, delay: "1 second" })]))
 * )
 * await Effect.runPromise(program.pipe(Effect.provide(services)))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, FiberSet, Layer, Option } from "effect"
import type { Duration, Scope, Stream } from "effect"
import { CancelReason, RunRegistry, SessionStore } from "@tether/core"
import type { Agent, AgentRun, LanguageModel, Message, RunEvent, RunOutcome, TokenBudget } from "@tether/core"
import * as Auth from "./Auth.js"
import * as RouteError from "./RouteError.js"
import * as Admission from "./internal/admission.js"
import * as LiveRuns from "./internal/liveRuns.js"
import * as SessionLocks from "./internal/sessionLocks.js"

/**
 * A session and the caller asking about it.
 *
 * @since 0.1.0
 */
export interface Who {
  readonly sessionId: string
  readonly caller: Auth.CallerId
}

/**
 * What a start asks for.
 *
 * @since 0.1.0
 */
export interface StartRequest<R> extends Who {
  readonly agent: Agent.Agent<R>
  /** The user's message; the session's conversation so far is its history. */
  readonly message: string
  /** The session's disconnect policy from now on. Default: the session's, or `cancel` for a new session. */
  readonly disconnect?: SessionStore.DisconnectPolicy | undefined
  /** The client's address, counted against `maxRunningPerAddress`; not counted when absent. */
  readonly clientAddress?: string | undefined
  /** A start for a session whose run is going: `refuse` it (`SessionBusy`, the default) or `supersede` that run. */
  readonly onConflict?: "refuse" | "supersede" | undefined
  /** Cancels the run with `Timeout` when it runs longer. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Token ceiling of the run tree; default the agent's. */
  readonly tokenBudget?: number | undefined
  /** Most runs the caller may have going at once, across its sessions (`TooManyRuns` past it). Default: no limit. */
  readonly maxRunningPerCaller?: number | undefined
  /** Most runs `clientAddress` may have going at once (`TooManyRuns` past it). Default: no limit. */
  readonly maxRunningPerAddress?: number | undefined
}

/**
 * A run that was admitted and started.
 *
 * @since 0.1.0
 */
export interface Started {
  readonly sessionId: string
  readonly runId: string
  /** The session's disconnect policy, as the start left it. */
  readonly disconnect: SessionStore.DisconnectPolicy
  /** The run's events from its first, ending with its terminal event. */
  readonly events: Stream.Stream<RunEvent.RunEvent>
  /** Cancels this run (not a later run of the session) with `reason`; its outcome. */
  readonly cancel: (reason: CancelReason.CancelReason) => Effect.Effect<RunOutcome.RunOutcome>
}

/**
 * What a cancel found and did.
 *
 * @since 0.1.0
 */
export interface Cancelled {
  readonly sessionId: string
  readonly runId: string
  /** Whether the run was still going when the cancel arrived (otherwise the outcome is the one it had). */
  readonly wasRunning: boolean
  readonly outcome: RunOutcome.RunOutcome
}

/**
 * A session's status: no run known (`Idle`), its latest run going (`Running`) or ended (`Ended`).
 *
 * @since 0.1.0
 */
export type Status =
  | (StatusCommon & { readonly _tag: "Idle" })
  | (StatusCommon & { readonly _tag: "Running"; readonly runId: string; readonly tokens: TokenBudget.Snapshot })
  | (StatusCommon & { readonly _tag: "Ended"; readonly runId: string; readonly outcome: RunOutcome.RunOutcome })

/** @since 0.1.0 */
export interface StatusCommon {
  readonly sessionId: string
  readonly disconnect: SessionStore.DisconnectPolicy
  /** Messages of the conversation so far (of the ended run's transcript, when the latest run has ended). */
  readonly messages: number
}

/**
 * A run's events, from where the client asked.
 *
 * @since 0.1.0
 */
export interface Attached {
  readonly sessionId: string
  readonly runId: string
  /** The events after the sequence number asked for (all of them when none was), ending with the terminal event. */
  readonly events: Stream.Stream<RunEvent.RunEvent>
}

/**
 * Why a request about an existing session was refused.
 *
 * @since 0.1.0
 */
export type AccessError = RouteError.SessionNotFound | RouteError.Forbidden | SessionStore.SessionStoreError

/**
 * Why a start was refused.
 *
 * @since 0.1.0
 */
export type StartError =
  | RouteError.Forbidden
  | RouteError.SessionBusy
  | RouteError.TooManyRuns
  | RouteError.Overloaded
  | SessionStore.SessionStoreError

/** @since 0.1.0 */
export interface Service {
  /**
   * Starts a run of `agent` on the session's conversation (a new session belongs to `caller`). Admitted at once, or
   * after a bounded wait, or refused (`Overloaded`, `TooManyRuns`, `SessionBusy`, `Forbidden`). The run goes on after
   * the effect returns: it ends by itself, by `cancel`, or by `Started.cancel`.
   */
  readonly start: <R>(
    request: StartRequest<R>
  ) => Effect.Effect<Started, StartError, LanguageModel.LanguageModel | Exclude<R, Auth.CurrentCaller>>
  /**
   * Takes a place (or a slot in the queue) for the start this fiber is about to make, or fails with `Overloaded` when
   * every place is taken and the queue is full. The place is held until that `start` takes it or the current scope
   * closes. No I/O: the routes ask it before they authenticate and read the body, so that a burst past the capacity
   * costs the server as little as possible, and each start of a burst is counted as it arrives (a check that only
   * looked let the whole burst through while the first runs were being set up). An implementation that cannot tell
   * answers success, and `start` decides.
   */
  readonly checkCapacity: Effect.Effect<void, RouteError.Overloaded, Scope.Scope>
  /**
   * The refusal a start arriving now would get for capacity, if any: a synchronous look, for a server that answers
   * such starts before they reach the routes (`SessionRoutes.refuseWhenFull`); `checkCapacity` and `start` still
   * decide for the starts it lets through. An implementation that cannot tell leaves it out.
   */
  readonly capacityRefusal?: (() => RouteError.Overloaded | undefined) | undefined
  /**
   * Cancels the session's latest run with `reason` and waits for its outcome (what was rolled back); an ended run
   * answers the outcome it had. Never waits behind starts.
   */
  readonly cancel: (
    request: Who & { readonly reason: CancelReason.CancelReason }
  ) => Effect.Effect<Cancelled, AccessError>
  /** The session's status. Never waits behind starts. */
  readonly status: (who: Who) => Effect.Effect<Status, AccessError>
  /** The latest run's events after `after` (from the first when `None`). Never waits behind starts. */
  readonly attach: (request: Who & { readonly after: Option.Option<number> }) => Effect.Effect<Attached, AccessError>
}

/**
 * The session runs the routes use.
 *
 * @since 0.1.0
 */
export class SessionRuns extends Context.Tag("@tether/http/SessionRuns")<SessionRuns, Service>() {}

/**
 * The capacity of the local implementation.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * Most runs going at once in this process; a start past it waits in the queue or gets 503 `Overloaded`. Default
   * `defaults.maxLiveRuns` (how it was chosen: the README of @tether/http).
   */
  readonly maxLiveRuns?: number | undefined
  /** Starts that may wait for a place once `maxLiveRuns` are going. Default 0: refused at once. */
  readonly maxQueuedStarts?: number | undefined
  /** How long a start waits in the queue before it is refused. Default 5 seconds. */
  readonly queueTimeout?: Duration.DurationInput | undefined
  /** What `Retry-After` tells a refused client (whole seconds, at least 1). Default 2 seconds. */
  readonly retryAfter?: Duration.DurationInput | undefined
}

/**
 * The capacity `make` and `layer` use when not told otherwise.
 *
 * @since 0.1.0
 */
export const defaults = {
  maxLiveRuns: 25,
  maxQueuedStarts: 0,
  queueTimeout: "5 seconds",
  retryAfter: "2 seconds"
} as const

const notFound = (sessionId: string) =>
  new RouteError.SessionNotFound({ sessionId, message: `no session ${sessionId}` })

const forbidden = (sessionId: string) =>
  new RouteError.Forbidden({ sessionId, message: `session ${sessionId} belongs to another caller` })

const isRunning = (run: AgentRun.AgentRun) => Effect.map(run.poll, Option.isNone)

/**
 * Session runs in this process, over `RunRegistry` and `SessionStore`; the runs' followers live as long as the
 * current scope.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Service, never, RunRegistry.RunRegistry | SessionStore.SessionStore | Scope.Scope> =>
  Effect.gen(function* () {
    const registry = yield* RunRegistry.RunRegistry
    const store = yield* SessionStore.SessionStore
    const admission = Admission.make({
      maxLiveRuns: options.maxLiveRuns ?? defaults.maxLiveRuns,
      maxQueuedStarts: options.maxQueuedStarts ?? defaults.maxQueuedStarts,
      queueTimeout: options.queueTimeout ?? defaults.queueTimeout,
      retryAfter: options.retryAfter ?? defaults.retryAfter
    })
    const liveRuns = LiveRuns.make()
    const locks = SessionLocks.make()
    // One fiber per live run, which gives its place and its count back when it ends; and the same, by run id, for a
    // cancel that has seen the outcome, so a start right after it finds the place free.
    const followers = yield* FiberSet.make()
    const endedByRun = new Map<string, () => void>()
    const giveBack = (run: AgentRun.AgentRun) => Effect.sync(() => endedByRun.get(run.id)?.())

    const ownSession = ({ caller, sessionId }: Who): Effect.Effect<SessionStore.Session, AccessError> =>
      Effect.flatMap(store.get(sessionId), (session): Effect.Effect<SessionStore.Session, AccessError> => {
        if (Option.isNone(session)) return Effect.fail(notFound(sessionId))
        return session.value.owner === caller ? Effect.succeed(session.value) : Effect.fail(forbidden(sessionId))
      })

    const latestRun = (sessionId: string): Effect.Effect<AgentRun.AgentRun, RouteError.SessionNotFound> =>
      Effect.flatMap(
        registry.get(sessionId),
        Option.match({ onNone: () => Effect.fail(notFound(sessionId)), onSome: Effect.succeed })
      )

    /**
     * A place for the run, held until the run ends (`ended`), or given back at once if `use` fails or is interrupted.
     */
    const withPlace = <A, E, R>(use: (release: () => void) => Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(admission.acquire, (release) =>
          restore(use(release)).pipe(Effect.onError(() => Effect.sync(release)))
        )
      )

    /** Under the session's lock: checks the session and the limits, takes a place, starts the run. */
    const startLocked = <R>(request: StartRequest<R>) =>
      Effect.gen(function* () {
        const { caller, sessionId } = request
        const existing = yield* store.get(sessionId)
        if (Option.isSome(existing) && existing.value.owner !== caller) return yield* forbidden(sessionId)
        // A run the registry still holds for a session the store no longer knows (forgotten, see
        // `SessionStore.MemoryOptions.retainIdle`) belongs to whoever had the id before: its transcript must not
        // become this caller's history. (If it is still going, the registry refuses the start below.)
        const previous = Option.isSome(existing) ? yield* registry.get(sessionId) : Option.none<AgentRun.AgentRun>()
        const busy = Option.isSome(previous) && (yield* isRunning(previous.value)) ? previous : Option.none()
        if (Option.isSome(busy) && request.onConflict !== "supersede") {
          return yield* new RouteError.SessionBusy({
            sessionId,
            runId: busy.value.id,
            message: `session ${sessionId} has a run going; stop it or wait for it to end`
          })
        }
        const reserved = liveRuns.reserve(
          { caller, sessionId, address: request.clientAddress },
          {
            perCaller: request.maxRunningPerCaller ?? Number.POSITIVE_INFINITY,
            perAddress: request.maxRunningPerAddress ?? Number.POSITIVE_INFINITY
          }
        )
        if (reserved instanceof RouteError.TooManyRuns) return yield* reserved
        return yield* Effect.gen(function* () {
          const history = yield* Option.match(previous, {
            onNone: () => Effect.succeed(Option.match(existing, { onNone: () => [], onSome: (s) => s.transcript })),
            // Only this session's lock is held while a superseded run rolls back.
            onSome: (run) =>
              Effect.map(
                Option.isSome(busy)
                  ? Effect.tap(run.cancel(new CancelReason.Superseded()), () => giveBack(run))
                  : run.outcome,
                (outcome) => outcome.transcript
              )
          })
          const disconnect =
            request.disconnect ??
            Option.match(existing, { onNone: () => "cancel" as const, onSome: (s) => s.disconnect })
          // The place is taken only now: a start that waited for a superseded run held none another session needs.
          return yield* withPlace((release) => startRun(request, { history, disconnect, reserved, release }))
        }).pipe(Effect.onError(() => Effect.sync(reserved)))
      })

    /** Starts the run, saves the session, and follows the run to give its place and its count back when it ends. */
    const startRun = <R>(
      request: StartRequest<R>,
      held: {
        readonly history: ReadonlyArray<Message.Message>
        readonly disconnect: SessionStore.DisconnectPolicy
        readonly reserved: () => void
        readonly release: () => void
      }
    ) =>
      Effect.gen(function* () {
        const { caller, sessionId } = request
        const { disconnect, history } = held
        const run = yield* registry
          .start(
            sessionId,
            request.agent,
            { history, message: request.message },
            { onConflict: "refuse", timeout: request.timeout, tokenBudget: request.tokenBudget }
          )
          .pipe(
            Effect.provideService(Auth.CurrentCaller, caller),
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
        const ended = () => {
          endedByRun.delete(run.id)
          held.reserved()
          held.release()
        }
        endedByRun.set(run.id, ended)
        yield* FiberSet.run(followers, Effect.ensuring(run.outcome, Effect.sync(ended)))
        // A run whose session could not be saved has nobody to stream to or stop it: it is cancelled at once.
        yield* store
          .save({ id: sessionId, owner: caller, disconnect, transcript: history, runId: run.id })
          .pipe(Effect.tapError(() => run.cancel(new CancelReason.Interrupted())))
        yield* store.follow(sessionId, run)
        return {
          sessionId,
          runId: run.id,
          disconnect,
          events: run.events,
          cancel: run.cancel
        } satisfies Started
      })

    const service: Service = {
      checkCapacity: admission.hold,
      capacityRefusal: admission.refusal,
      start: (request) => locks.withLock(request.sessionId)(startLocked(request)),
      cancel: ({ reason, ...who }) =>
        Effect.gen(function* () {
          yield* ownSession(who)
          const run = yield* latestRun(who.sessionId)
          const wasRunning = yield* isRunning(run)
          const outcome = yield* run.cancel(reason)
          yield* giveBack(run)
          return { sessionId: who.sessionId, runId: run.id, wasRunning, outcome }
        }),
      status: (who) =>
        Effect.gen(function* () {
          const session = yield* ownSession(who)
          const common = { sessionId: session.id, disconnect: session.disconnect, messages: session.transcript.length }
          const latest = yield* registry.get(session.id)
          if (Option.isNone(latest)) return { ...common, _tag: "Idle" } as const
          const run = latest.value
          const outcome = yield* run.poll
          if (Option.isSome(outcome)) {
            return {
              ...common,
              _tag: "Ended",
              messages: outcome.value.transcript.length,
              runId: run.id,
              outcome: outcome.value
            } as const
          }
          return { ...common, _tag: "Running", runId: run.id, tokens: yield* run.tokens } as const
        }),
      attach: ({ after, ...who }) =>
        Effect.gen(function* () {
          yield* ownSession(who)
          const run = yield* latestRun(who.sessionId)
          const events = Option.match(after, { onNone: () => run.events, onSome: run.eventsAfter })
          return { sessionId: who.sessionId, runId: run.id, events }
        })
    }
    return service
  })

/**
 * Session runs in this process, for the lifetime of the layer, over the `RunRegistry` and the `SessionStore` it is
 * given.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RunRegistry, SessionStore } from "@tether/core"
 * import { SessionRuns } from "@tether/http"
 *
 * const runs = SessionRuns.layer({ maxLiveRuns: 150, maxQueuedStarts: 50, queueTimeout: "3 seconds" }).pipe(
 *   Layer.provideMerge(Layer.mergeAll(RunRegistry.layer(), SessionStore.layerMemory()))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionRuns, never, RunRegistry.RunRegistry | SessionStore.SessionStore> =>
  Layer.scoped(SessionRuns, make(options))
