import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Message, SessionStore } from "@tether/core"
import { Effect, Option, Schema } from "effect"
import type { ParseResult } from "effect"
import { type Dialect, lockRecordsTable } from "./records.js"

/** @internal */
export const defaultSessionsTable = "tether_sessions"

/** The tables of one store: a row per session, a row per message of its transcript. @internal */
export interface Tables {
  readonly dialect: Dialect
  readonly sessions: string
  readonly messages: string
}

/** @internal */
export const tablesOf = (dialect: Dialect, sessions: string): Tables => ({
  dialect,
  sessions,
  messages: `${sessions}_messages`
})

/** Message rows inserted per statement: SQLite allows 32 766 parameters, PostgreSQL 65 535. */
const insertBatch = 500

/**
 * A digest of messages (their JSON texts, in order): SHA-256 of the texts joined by newlines (which JSON text
 * never holds raw), hex. The row of a session keeps the digest of its stored transcript, so a save can tell whether
 * the transcript it is given extends the stored one without reading it back.
 */
const digest = (texts: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.digest("SHA-256", new TextEncoder().encode(texts.join("\n")))).pipe(
    Effect.map((bytes) => Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, "0")).join(""))
  )

const columnsOf = (sql: SqlClient.SqlClient, tables: Tables): Effect.Effect<ReadonlyArray<string>, SqlError> =>
  (tables.dialect === "pg"
    ? sql<{
        readonly name: string
      }>`SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ${tables.sessions}`
    : sql<{ readonly name: string }>`SELECT name FROM pragma_table_info(${tables.sessions})`
  ).pipe(Effect.map((rows) => rows.map((row) => row.name)))

/**
 * Sessions stored by the first schema (one row per session, its whole transcript a JSON document in `transcript`)
 * move to message rows, in the transaction of `migrate`: each transcript's messages become rows, then the column
 * goes. A transcript that is not a JSON array stops the migration (a defect naming the session) with nothing
 * changed: no stored conversation is dropped or guessed at.
 */
const migrateTranscripts = (sql: SqlClient.SqlClient, tables: Tables): Effect.Effect<void, SqlError> =>
  Effect.gen(function* () {
    const columns = yield* columnsOf(sql, tables)
    if (!columns.includes("transcript")) return
    if (!columns.includes("message_count")) {
      yield* sql`ALTER TABLE ${sql(tables.sessions)} ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0`
      yield* sql`ALTER TABLE ${sql(tables.sessions)} ADD COLUMN transcript_digest TEXT NOT NULL DEFAULT ''`
    }
    const rows = yield* sql<{
      readonly id: string
      readonly transcript: string
    }>`SELECT id, transcript FROM ${sql(tables.sessions)} ORDER BY id`
    for (const row of rows) {
      let messages: unknown
      try {
        messages = JSON.parse(row.transcript)
      } catch {
        messages = undefined
      }
      if (!Array.isArray(messages)) {
        return yield* Effect.dieMessage(
          `@tether/sql: the transcript of session "${row.id}" in ${tables.sessions} is not a JSON array; ` +
            "the sessions were not migrated to message rows (nothing was changed)"
        )
      }
      const texts = messages.map((message) => JSON.stringify(message))
      yield* sql`DELETE FROM ${sql(tables.messages)} WHERE session_id = ${row.id}`
      yield* insertMessages(sql, tables, row.id, texts, 0)
      yield* sql`UPDATE ${sql(tables.sessions)} SET message_count = ${texts.length},
        transcript_digest = ${yield* digest(texts)} WHERE id = ${row.id}`
    }
    yield* sql`ALTER TABLE ${sql(tables.sessions)} DROP COLUMN transcript`
  })

/**
 * Creates the tables and the owner index if missing, and moves the sessions of the first schema to message rows
 * (see `migrateTranscripts`), all in one transaction (on PostgreSQL under an advisory lock, as the records table:
 * concurrent first starts are safe).
 *
 * @internal
 */
export const migrate = (sql: SqlClient.SqlClient, tables: Tables): Effect.Effect<void, SqlError> => {
  const create = Effect.all([
    sql`CREATE TABLE IF NOT EXISTS ${sql(tables.sessions)} (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      disconnect TEXT NOT NULL,
      run_id TEXT,
      updated_at BIGINT NOT NULL,
      message_count INTEGER NOT NULL DEFAULT 0,
      transcript_digest TEXT NOT NULL DEFAULT ''
    )`,
    sql`CREATE INDEX IF NOT EXISTS ${sql(`${tables.sessions}_owner`)} ON ${sql(tables.sessions)} (owner)`,
    sql`CREATE TABLE IF NOT EXISTS ${sql(tables.messages)} (
      session_id TEXT NOT NULL,
      position INTEGER NOT NULL,
      message TEXT NOT NULL,
      PRIMARY KEY (session_id, position)
    )`,
    migrateTranscripts(sql, tables)
  ])
  return sql
    .withTransaction(tables.dialect === "pg" ? Effect.zipRight(lockRecordsTable(sql, tables.sessions), create) : create)
    .pipe(Effect.asVoid)
}

const insertMessages = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  sessionId: string,
  texts: ReadonlyArray<string>,
  from: number
): Effect.Effect<void, SqlError> =>
  Effect.gen(function* () {
    for (let at = from; at < texts.length; at += insertBatch) {
      const rows = texts
        .slice(at, at + insertBatch)
        .map((message, i) => ({ session_id: sessionId, position: at + i, message }))
      yield* sql`INSERT INTO ${sql(tables.messages)} ${sql.insert(rows)}`
    }
  })

const MessageJson = Schema.parseJson(Message.Message)

const Row = Schema.Struct({
  id: Schema.String,
  owner: SessionStore.CallerId,
  disconnect: SessionStore.DisconnectPolicy,
  run_id: Schema.NullOr(Schema.String),
  message_count: Schema.Union(Schema.Number, Schema.NumberFromString),
  message: Schema.NullOr(MessageJson)
})

class MissingMessages extends Schema.TaggedError<MissingMessages>()("MissingMessages", {
  sessionId: Schema.String,
  expected: Schema.Number,
  found: Schema.Number
}) {}

/** Sessions from the rows of a join of sessions and messages, ordered by session, then position. */
const decodeRows = (
  rows: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<SessionStore.Session>, ParseResult.ParseError | MissingMessages> =>
  Effect.gen(function* () {
    const decoded = yield* Schema.decodeUnknown(Schema.Array(Row))(rows)
    const sessions: Array<SessionStore.Session & { readonly transcript: Array<Message.Message> }> = []
    const counts: Array<number> = []
    for (const row of decoded) {
      let last = sessions.at(-1)
      if (last?.id !== row.id) {
        last = {
          id: row.id,
          owner: row.owner,
          disconnect: row.disconnect,
          transcript: [],
          runId: row.run_id ?? undefined
        }
        sessions.push(last)
        counts.push(Number(row.message_count))
      }
      if (row.message !== null) last.transcript.push(row.message)
    }
    for (const [i, session] of sessions.entries()) {
      if (session.transcript.length !== counts[i]) {
        return yield* new MissingMessages({
          sessionId: session.id,
          expected: counts[i]!,
          found: session.transcript.length
        })
      }
    }
    return sessions
  })

/** @internal */
export type ReadError = SqlError | ParseResult.ParseError | MissingMessages

/** @internal */
export const get = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  sessionId: string
): Effect.Effect<Option.Option<SessionStore.Session>, ReadError> =>
  sql`SELECT s.id, s.owner, s.disconnect, s.run_id, s.message_count, m.message
    FROM ${sql(tables.sessions)} s LEFT JOIN ${sql(tables.messages)} m ON m.session_id = s.id
    WHERE s.id = ${sessionId} ORDER BY m.position`.pipe(
    Effect.flatMap(decodeRows),
    Effect.map((sessions) => Option.fromNullable(sessions[0]))
  )

/** @internal */
export const ownedBy = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  owner: SessionStore.CallerId
): Effect.Effect<ReadonlyArray<SessionStore.Session>, ReadError> =>
  sql`SELECT s.id, s.owner, s.disconnect, s.run_id, s.message_count, m.message
    FROM ${sql(tables.sessions)} s LEFT JOIN ${sql(tables.messages)} m ON m.session_id = s.id
    WHERE s.owner = ${owner} ORDER BY s.id, m.position`.pipe(Effect.flatMap(decodeRows))

interface Stored {
  readonly run_id: string | null
  readonly message_count: number | string
  readonly transcript_digest: string
}

/**
 * In a transaction: reads the stored session (after a lock of it on PostgreSQL: saves of one session apply one at
 * a time, or two first saves would both insert position 0) and hands it to `write`.
 */
const withStored = <A>(
  sql: SqlClient.SqlClient,
  tables: Tables,
  sessionId: string,
  write: (stored: Stored | undefined) => Effect.Effect<A, SqlError>
): Effect.Effect<A, SqlError> =>
  sql.withTransaction(
    Effect.gen(function* () {
      if (tables.dialect === "pg") {
        yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`tether:${tables.sessions}:${sessionId}`}))`
      }
      const [stored] = yield* sql<Stored>`SELECT run_id, message_count, transcript_digest
        FROM ${sql(tables.sessions)} WHERE id = ${sessionId}`
      return yield* write(stored)
    })
  )

/**
 * Writes the message rows of `transcript` over the stored ones, and returns its length and digest. The transcript is
 * compared with the stored one by length and digest: when it extends it (the stored messages are its first ones),
 * only the new messages are inserted; otherwise (a transcript rewritten shorter or different, or a new session) the
 * session's message rows are replaced.
 */
const writeMessages = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  sessionId: string,
  stored: Stored | undefined,
  transcript: ReadonlyArray<Message.Message>
): Effect.Effect<{ readonly count: number; readonly digest: string }, SqlError> =>
  Effect.gen(function* () {
    const texts = transcript.map((message) => JSON.stringify(message))
    const storedCount = stored === undefined ? 0 : Number(stored.message_count)
    const isExtension =
      stored !== undefined &&
      storedCount <= texts.length &&
      stored.transcript_digest === (yield* digest(texts.slice(0, storedCount)))
    if (stored !== undefined && !isExtension) {
      yield* sql`DELETE FROM ${sql(tables.messages)} WHERE session_id = ${sessionId}`
    }
    yield* insertMessages(sql, tables, sessionId, texts, isExtension ? storedCount : 0)
    return {
      count: texts.length,
      digest: isExtension && storedCount === texts.length ? stored.transcript_digest : yield* digest(texts)
    }
  })

/**
 * Creates or replaces `session`, in one short transaction; of its transcript, only what the stored one lacks is
 * written (see `writeMessages`).
 *
 * @internal
 */
export const save = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  session: SessionStore.Session,
  now: number
): Effect.Effect<void, SqlError> =>
  withStored(sql, tables, session.id, (stored) =>
    Effect.flatMap(
      writeMessages(sql, tables, session.id, stored, session.transcript),
      (written) => sql`INSERT INTO ${sql(tables.sessions)}
          (id, owner, disconnect, run_id, updated_at, message_count, transcript_digest)
        VALUES (${session.id}, ${session.owner}, ${session.disconnect}, ${session.runId ?? null}, ${now},
          ${written.count}, ${written.digest})
        ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, disconnect = excluded.disconnect,
          run_id = excluded.run_id, updated_at = excluded.updated_at, message_count = excluded.message_count,
          transcript_digest = excluded.transcript_digest`
    )
  ).pipe(Effect.asVoid)

/**
 * The transcript of run `runId`, if it is still the session's latest run (else nothing is written), in one short
 * transaction; only what the stored transcript lacks is written.
 *
 * @internal
 */
export const saveTranscript = (
  sql: SqlClient.SqlClient,
  tables: Tables,
  sessionId: string,
  runId: string,
  transcript: ReadonlyArray<Message.Message>,
  now: number
): Effect.Effect<void, SqlError> =>
  withStored(sql, tables, sessionId, (stored) =>
    stored === undefined || stored.run_id !== runId
      ? Effect.void
      : Effect.flatMap(writeMessages(sql, tables, sessionId, stored, transcript), (written) =>
          sql`UPDATE ${sql(tables.sessions)} SET message_count = ${written.count},
              transcript_digest = ${written.digest}, updated_at = ${now}
            WHERE id = ${sessionId}`.pipe(Effect.asVoid)
        )
  )
