import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"

/** @internal */
export const defaultRecordsTable = "tether_records"

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** @internal */
export const checkRecordsTable = (name: string): Effect.Effect<string> =>
  identifier.test(name)
    ? Effect.succeed(name)
    : Effect.dieMessage(`@tether/sql: "${name}" is not a valid table name (letters, digits and _, at most 63)`)

/** @internal */
export type Dialect = "sqlite" | "pg"

/** @internal */
export const dialectOf = (sql: SqlClient.SqlClient): Effect.Effect<Dialect> =>
  sql.onDialectOrElse({
    sqlite: () => Effect.succeed<Dialect>("sqlite"),
    pg: () => Effect.succeed<Dialect>("pg"),
    orElse: () => Effect.dieMessage("@tether/sql supports SQLite and PostgreSQL clients only")
  })

/**
 * Creates the key-value table if it is missing. On PostgreSQL an advisory lock
 * makes concurrent first starts (several processes, parallel tests) safe.
 *
 * @internal
 */
export const migrate = (sql: SqlClient.SqlClient, dialect: Dialect, table: string): Effect.Effect<void, SqlError> =>
  dialect === "pg"
    ? sql
        .withTransaction(
          Effect.zipRight(
            lockRecordsTable(sql, table),
            sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
              table_name text NOT NULL,
              key text NOT NULL,
              value jsonb NOT NULL,
              PRIMARY KEY (table_name, key)
            )`
          )
        )
        .pipe(Effect.asVoid)
    : sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
        table_name TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (table_name, key)
      ) WITHOUT ROWID`.pipe(Effect.asVoid)

/**
 * A transaction-scoped PostgreSQL advisory lock named after the records table.
 * Commits take it first, so they apply one at a time in a total order (no
 * deadlocks between runs writing the same keys in different orders).
 *
 * @internal
 */
export const lockRecordsTable = (sql: SqlClient.SqlClient, table: string): Effect.Effect<void, SqlError> =>
  sql`SELECT pg_advisory_xact_lock(hashtext(${`tether:${table}`}))`.pipe(Effect.asVoid)

interface RecordRow {
  readonly table_name: string
  readonly key: string
  readonly value: unknown
}

const decodeValue = (dialect: Dialect, value: unknown): unknown =>
  dialect === "sqlite" && typeof value === "string" ? JSON.parse(value) : value

/** @internal */
export const read = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  records: string,
  table: string,
  key: string
): Effect.Effect<Option.Option<unknown>, SqlError> =>
  sql<RecordRow>`SELECT value FROM ${sql(records)} WHERE table_name = ${table} AND key = ${key}`.pipe(
    Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (row) => decodeValue(dialect, row.value)))
  )

/** @internal */
export const list = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  records: string,
  table: string
): Effect.Effect<ReadonlyArray<readonly [key: string, value: unknown]>, SqlError> =>
  sql<RecordRow>`SELECT key, value FROM ${sql(records)} WHERE table_name = ${table} ORDER BY key`.pipe(
    Effect.map((rows) => rows.map((row) => [row.key, decodeValue(dialect, row.value)] as const))
  )

/** @internal */
export const snapshot = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  records: string
): Effect.Effect<ReadonlyMap<string, ReadonlyMap<string, unknown>>, SqlError> =>
  sql<RecordRow>`SELECT table_name, key, value FROM ${sql(records)} ORDER BY table_name, key`.pipe(
    Effect.map((rows) => {
      const tables = new Map<string, Map<string, unknown>>()
      for (const row of rows) {
        const entries = tables.get(row.table_name) ?? new Map<string, unknown>()
        tables.set(row.table_name, entries)
        entries.set(row.key, decodeValue(dialect, row.value))
      }
      return tables
    })
  )
