import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Message, SessionStore } from "@tether/core"
import { Effect, Option, Schema } from "effect"
import type { ParseResult } from "effect"
import { type Dialect, lockRecordsTable } from "./records.js"

/** @internal */
export const defaultSessionsTable = "tether_sessions"

/**
 * Creates the sessions table and its owner index if missing (on PostgreSQL under an advisory lock, as the records
 * table: concurrent first starts are safe).
 *
 * @internal
 */
export const migrate = (sql: SqlClient.SqlClient, dialect: Dialect, table: string): Effect.Effect<void, SqlError> => {
  const create = Effect.zipRight(
    sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      disconnect TEXT NOT NULL,
      transcript TEXT NOT NULL,
      run_id TEXT,
      updated_at BIGINT NOT NULL
    )`,
    sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_owner`)} ON ${sql(table)} (owner)`
  )
  return dialect === "pg"
    ? sql.withTransaction(Effect.zipRight(lockRecordsTable(sql, table), create)).pipe(Effect.asVoid)
    : Effect.asVoid(create)
}

const Row = Schema.Struct({
  id: Schema.String,
  owner: SessionStore.CallerId,
  disconnect: SessionStore.DisconnectPolicy,
  transcript: Schema.parseJson(Schema.Array(Message.Message)),
  run_id: Schema.NullOr(Schema.String)
})

const decodeRow = (row: unknown): Effect.Effect<SessionStore.Session, ParseResult.ParseError> =>
  Effect.map(Schema.decodeUnknown(Row)(row), (decoded) => ({
    id: decoded.id,
    owner: decoded.owner,
    disconnect: decoded.disconnect,
    transcript: decoded.transcript,
    runId: decoded.run_id ?? undefined
  }))

/** @internal */
export const get = (
  sql: SqlClient.SqlClient,
  table: string,
  sessionId: string
): Effect.Effect<Option.Option<SessionStore.Session>, SqlError | ParseResult.ParseError> =>
  sql`SELECT id, owner, disconnect, transcript, run_id FROM ${sql(table)} WHERE id = ${sessionId}`.pipe(
    Effect.flatMap((rows) => (rows.length === 0 ? Effect.succeedNone : Effect.asSome(decodeRow(rows[0]))))
  )

/** @internal */
export const ownedBy = (
  sql: SqlClient.SqlClient,
  table: string,
  owner: SessionStore.CallerId
): Effect.Effect<ReadonlyArray<SessionStore.Session>, SqlError | ParseResult.ParseError> =>
  sql`SELECT id, owner, disconnect, transcript, run_id FROM ${sql(table)} WHERE owner = ${owner} ORDER BY id`.pipe(
    Effect.flatMap((rows) => Effect.forEach(rows, decodeRow))
  )

/** @internal */
export const upsert = (
  sql: SqlClient.SqlClient,
  table: string,
  session: SessionStore.Session,
  now: number
): Effect.Effect<void, SqlError> =>
  sql`INSERT INTO ${sql(table)} (id, owner, disconnect, transcript, run_id, updated_at)
    VALUES (${session.id}, ${session.owner}, ${session.disconnect}, ${JSON.stringify(session.transcript)},
      ${session.runId ?? null}, ${now})
    ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, disconnect = excluded.disconnect,
      transcript = excluded.transcript, run_id = excluded.run_id, updated_at = excluded.updated_at`.pipe(Effect.asVoid)

/** The transcript of run `runId`, if it is still the session's latest run. @internal */
export const saveTranscript = (
  sql: SqlClient.SqlClient,
  table: string,
  sessionId: string,
  runId: string,
  transcript: ReadonlyArray<Message.Message>,
  now: number
): Effect.Effect<void, SqlError> =>
  sql`UPDATE ${sql(table)} SET transcript = ${JSON.stringify(transcript)}, updated_at = ${now}
    WHERE id = ${sessionId} AND run_id = ${runId}`.pipe(Effect.asVoid)
