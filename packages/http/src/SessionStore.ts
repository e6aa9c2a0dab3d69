/**
 * What the routes remember of a session between requests: its owner, its
 * disconnect policy, its latest run and the conversation so far. When a run
 * ends (completed, cancelled or failed) its transcript becomes the session's,
 * so the next message continues the conversation; a cancelled run's
 * transcript is closed by the core (every tool call answered), so it is valid too.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { SessionStore } from "@tether/http"
 *
 * const owner = Effect.gen(function* () {
 *   const store = yield* SessionStore.SessionStore
 *   const session = yield* store.get("session-1")
 *   return Option.map(session, (s) => s.owner)
 * }).pipe(Effect.provide(SessionStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, FiberSet, Layer, Option, Schema } from "effect"
import type { AgentRun, Message } from "@tether/core"
import type { CallerId } from "./Auth.js"

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
  readonly transcript: ReadonlyArray<Message.Message>
  /** The latest run's id. */
  readonly runId: string | undefined
}

/** @since 0.1.0 */
export interface Service {
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<Session>>
  /** Creates or replaces a session. */
  readonly save: (session: Session) => Effect.Effect<void>
  /** The sessions `owner` started. */
  readonly ownedBy: (owner: CallerId) => Effect.Effect<ReadonlyArray<Session>>
  /**
   * Follows `run`: when it ends, its transcript becomes the session's (unless a
   * newer run of the session has started since). The follower lives as long as the store.
   */
  readonly follow: (sessionId: string, run: AgentRun.AgentRun) => Effect.Effect<void>
}

/** @since 0.1.0 */
export class SessionStore extends Context.Tag("@tether/http/SessionStore")<SessionStore, Service>() {}

/** Makes an in-memory store whose followers live as long as the current scope. @since 0.1.0 */
export const makeMemory = Effect.gen(function* () {
  const sessions = new Map<string, Session>()
  const followers = yield* FiberSet.make()
  const service: Service = {
    get: (sessionId) => Effect.sync(() => Option.fromNullable(sessions.get(sessionId))),
    save: (session) => Effect.sync(() => void sessions.set(session.id, session)),
    ownedBy: (owner) => Effect.sync(() => Array.from(sessions.values()).filter((session) => session.owner === owner)),
    follow: (sessionId, run) =>
      FiberSet.run(
        followers,
        Effect.flatMap(run.outcome, (outcome) =>
          Effect.sync(() => {
            const session = sessions.get(sessionId)
            if (session !== undefined && session.runId === run.id) {
              sessions.set(sessionId, { ...session, transcript: outcome.transcript })
            }
          })
        )
      ).pipe(Effect.asVoid)
  }
  return service
})

/** Sessions in memory, for one process. @since 0.1.0 */
export const layerMemory: Layer.Layer<SessionStore> = Layer.scoped(SessionStore, makeMemory)
