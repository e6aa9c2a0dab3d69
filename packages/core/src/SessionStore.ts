/**
 * What an application remembers of a session between requests (the routes of `@tether/http` use it): its owner, its
 * disconnect policy, its latest run and the conversation so far. When a run
 * ends (completed, cancelled or failed) its transcript becomes the session's,
 * so the next message continues the conversation; a cancelled run's
 * transcript is closed by the core (every tool call answered), so it is valid too.
 * The in-memory store keeps every session for the life of the process, or
 * forgets one once it has been idle for `retainIdle` (`layerMemory({ retainIdle })`).
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { SessionStore } from "@tether/core"
 *
 * const owner = Effect.gen(function* () {
 *   const store = yield* SessionStore.SessionStore
 *   const session = yield* store.get("session-1")
 *   return Option.map(session, (s) => s.owner)
 * }).pipe(Effect.provide(SessionStore.layerMemory()))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, FiberSet, Layer, Option, Schedule, Schema } from "effect"
import type { Scope } from "effect"
import type { AgentRun } from "./AgentRun.js"
import type { Message } from "./Message.js"

/**
 * Who owns a session: the caller that started it, as an authentication layer names it (`@tether/http`'s `Auth`).
 * Letters, digits, `_`, `-`, `.`, `@`, `:`; 1 to 128 characters.
 *
 * @since 0.1.0
 */
export const CallerId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_.@:-]{1,128}$/),
  Schema.brand("@tether/core/CallerId")
)
/** @since 0.1.0 */
export type CallerId = typeof CallerId.Type

/**
 * What a client disconnect does to the run it was streaming: `cancel`
 * interrupts the run with reason `ClientDisconnected`; `detach` lets it run
 * on, and the client re-attaches with `Last-Event-ID`.
 *
 * @since 0.1.0
 */
export const DisconnectPolicy = Schema.Literal("cancel", "detach")
/** @since 0.1.0 */
export type DisconnectPolicy = typeof DisconnectPolicy.Type

/** @since 0.1.0 */
export interface Session {
  readonly id: string
  readonly owner: CallerId
  readonly disconnect: DisconnectPolicy
  /** The conversation so far: the transcript of the latest run that ended. */
  readonly transcript: ReadonlyArray<Message>
  /** The latest run's id. */
  readonly runId: string | undefined
}

/**
 * The store could not read or write (a database down, a row that does not decode). The routes answer it with
 * 503 `StoreUnavailable`. @since 0.1.0
 */
export class SessionStoreError extends Schema.TaggedError<SessionStoreError>()("SessionStoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** @since 0.1.0 */
export interface Service {
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** Creates or replaces a session. */
  readonly save: (session: Session) => Effect.Effect<void, SessionStoreError>
  /** The sessions `owner` started. */
  readonly ownedBy: (owner: CallerId) => Effect.Effect<ReadonlyArray<Session>, SessionStoreError>
  /**
   * Follows `run`: when it ends, its transcript becomes the session's (unless a
   * newer run of the session has started since). The follower lives as long as the
   * store; a store that fails to save the transcript logs it.
   */
  readonly follow: (sessionId: string, run: AgentRun) => Effect.Effect<void>
}

/** @since 0.1.0 */
export class SessionStore extends Context.Tag("@tether/core/SessionStore")<SessionStore, Service>() {}

/** @since 0.1.0 */
export interface MemoryOptions {
  /**
   * How long a session is kept once it is idle: no run of it going (none followed and not yet ended), no save.
   * Then it is forgotten with its conversation: its routes answer 404, and a message to its id starts a new
   * session (of whoever sends it). A sweep forgets it, every minute (every `retainIdle` if that is shorter, but
   * not more often than every second). Default `Duration.infinity`: every session stays for the life of the
   * process (the soak measured ~3-6 KB a short conversation), so a long-lived server should set it.
   */
  readonly retainIdle?: Duration.DurationInput | undefined
}

/** Makes an in-memory store whose followers (and sweeper) live as long as the current scope. @since 0.1.0 */
export const makeMemory = (options: MemoryOptions = {}): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function* () {
    const sessions = new Map<string, Session>()
    const byOwner = new Map<CallerId, Set<string>>()
    // When each session last changed, by Effect's Clock, and how many of its runs are followed and not yet ended.
    const touchedAt = new Map<string, number>()
    const following = new Map<string, number>()
    const followers = yield* FiberSet.make()
    const clock = yield* Effect.clock

    const put = (session: Session) => {
      const previous = sessions.get(session.id)
      if (previous !== undefined && previous.owner !== session.owner) byOwner.get(previous.owner)?.delete(session.id)
      sessions.set(session.id, session)
      const owned = byOwner.get(session.owner)
      if (owned === undefined) byOwner.set(session.owner, new Set([session.id]))
      else owned.add(session.id)
      touchedAt.set(session.id, clock.unsafeCurrentTimeMillis())
    }
    const drop = (sessionId: string) => {
      const session = sessions.get(sessionId)
      if (session === undefined) return
      sessions.delete(sessionId)
      touchedAt.delete(sessionId)
      const owned = byOwner.get(session.owner)
      owned?.delete(sessionId)
      if (owned?.size === 0) byOwner.delete(session.owner)
    }
    const countFollower = (sessionId: string, delta: 1 | -1) => {
      const count = (following.get(sessionId) ?? 0) + delta
      if (count === 0) following.delete(sessionId)
      else following.set(sessionId, count)
    }

    const retainIdle = Duration.decode(options.retainIdle ?? Duration.infinity)
    if (Duration.isFinite(retainIdle)) {
      const retainMillis = Duration.toMillis(retainIdle)
      const sweep = Effect.sync(() => {
        const now = clock.unsafeCurrentTimeMillis()
        for (const [sessionId, at] of touchedAt) {
          if (now - at >= retainMillis && !following.has(sessionId)) drop(sessionId)
        }
      })
      const every = Duration.max(Duration.min(retainIdle, Duration.minutes(1)), Duration.seconds(1))
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(every)))
    }

    const service: Service = {
      get: (sessionId) => Effect.sync(() => Option.fromNullable(sessions.get(sessionId))),
      save: (session) => Effect.sync(() => put(session)),
      ownedBy: (owner) =>
        Effect.sync(() => Array.from(byOwner.get(owner) ?? [], (sessionId) => sessions.get(sessionId)!)),
      follow: (sessionId, run) =>
        Effect.suspend(() => {
          countFollower(sessionId, 1)
          return FiberSet.run(
            followers,
            run.outcome.pipe(
              Effect.tap((outcome) =>
                Effect.sync(() => {
                  const session = sessions.get(sessionId)
                  if (session !== undefined && session.runId === run.id)
                    put({ ...session, transcript: outcome.transcript })
                })
              ),
              Effect.ensuring(Effect.sync(() => countFollower(sessionId, -1)))
            )
          )
        }).pipe(Effect.asVoid)
    }
    return service
  })

/**
 * Sessions in memory, for one process: kept for its life, or each forgotten `retainIdle` after it went idle.
 *
 * @example
 * ```ts
 * import { SessionStore } from "@tether/core"
 *
 * const sessions = SessionStore.layerMemory({ retainIdle: "1 hour" })
 * ```
 *
 * @since 0.1.0
 */
export const layerMemory = (options: MemoryOptions = {}): Layer.Layer<SessionStore> =>
  Layer.scoped(SessionStore, makeMemory(options))
