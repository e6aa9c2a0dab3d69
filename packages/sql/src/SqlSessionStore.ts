/**
 * @tether/core's `SessionStore` in SQL tables (SQLite or PostgreSQL, the
 * `SqlClient` in context): sessions, their owners and their conversations
 * outlive the process. A row per session (`tether_sessions` by default) and a
 * row per message of its transcript (`tether_sessions_messages`), created if
 * missing. A save is one short transaction that appends only the messages the
 * stored transcript lacks (a transcript rewritten shorter or different replaces
 * the stored one); the transcript of an ended run is written only while that
 * run is still the session's latest, so a late run never overwrites a newer
 * one. Tables of the first schema (the whole transcript as one JSON document)
 * are migrated on start. Rows stay until you delete them.
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
    const tables = Sessions.tablesOf(dialect, table)
    yield* Sessions.migrate(sql, tables)
    const followers = yield* FiberSet.make()
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const service: SessionStore.Service = {
      get: (sessionId) =>
        Sessions.get(sql, tables, sessionId).pipe(Effect.mapError(storeError("could not read the session"))),
      save: (session) =>
        Sessions.save(sql, tables, session, now()).pipe(Effect.mapError(storeError("could not save the session"))),
      ownedBy: (owner) =>
        Sessions.ownedBy(sql, tables, owner).pipe(Effect.mapError(storeError("could not list the caller's sessions"))),
      follow: (sessionId, run) =>
        FiberSet.run(
          followers,
          run.outcome.pipe(
            Effect.flatMap((outcome) =>
              Effect.uninterruptible(Sessions.saveTranscript(sql, tables, sessionId, run.id, outcome.transcript, now()))
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
