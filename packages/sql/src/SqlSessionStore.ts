/**
 * @tether/core's `SessionStore` in a SQL table (SQLite or PostgreSQL, the
 * `SqlClient` in context): sessions, their owners and their conversations
 * outlive the process. One row per session (`tether_sessions` by default,
 * created if missing), written in one statement each: a save is an upsert, and
 * the transcript of an ended run is written only while that run is still the
 * session's latest (a conditional update, so a late run never overwrites a
 * newer one). Rows stay until you delete them.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { SqlSessionStore, SqlStagedWrites } from "@tether/sql"
 *
 * // Staged writes and sessions in one SQLite file, on one client.
 * const storage = SqlSessionStore.layer().pipe(
 *   Layer.provideMerge(SqlStagedWrites.layerSqlite({ filename: ".data/tether.db" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { SessionStore } from "@tether/core"
import { Effect, FiberSet, Layer } from "effect"
import type { Scope } from "effect"
import * as RecordsTable from "./internal/records.js"
import * as Sessions from "./internal/sessions.js"

/** @since 0.1.0 */
export interface Options {
  /** The sessions table. Default `"tether_sessions"`. */
  readonly sessionsTable?: string | undefined
}

const storeError = (message: string) => (cause: unknown) => new SessionStore.SessionStoreError({ message, cause })

/**
 * Builds the store on the `SqlClient` in context and creates its table if missing. Its followers (one fiber per
 * run followed, until the run ends) live as long as the scope; the write of an ended run's transcript, once begun,
 * finishes even if the scope closes meanwhile.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionStore.Service, SqlError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const dialect = yield* RecordsTable.dialectOf(sql)
    const table = yield* RecordsTable.checkRecordsTable(options.sessionsTable ?? Sessions.defaultSessionsTable)
    yield* Sessions.migrate(sql, dialect, table)
    const followers = yield* FiberSet.make()
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const service: SessionStore.Service = {
      get: (sessionId) =>
        Sessions.get(sql, table, sessionId).pipe(Effect.mapError(storeError("could not read the session"))),
      save: (session) =>
        Sessions.upsert(sql, table, session, now()).pipe(Effect.mapError(storeError("could not save the session"))),
      ownedBy: (owner) =>
        Sessions.ownedBy(sql, table, owner).pipe(Effect.mapError(storeError("could not list the caller's sessions"))),
      follow: (sessionId, run) =>
        FiberSet.run(
          followers,
          run.outcome.pipe(
            Effect.flatMap((outcome) =>
              Effect.uninterruptible(Sessions.saveTranscript(sql, table, sessionId, run.id, outcome.transcript, now()))
            ),
            Effect.catchAll((error) =>
              Effect.logError("could not save the transcript of an ended run", error).pipe(
                Effect.annotateLogs({ sessionId, runId: run.id })
              )
            )
          )
        ).pipe(Effect.asVoid)
    }
    return service
  })

/**
 * `SessionStore` on the `SqlClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SessionStore.SessionStore, SqlError, SqlClient.SqlClient> =>
  Layer.scoped(SessionStore.SessionStore, make(options))
