/**
 * PostgreSQL for the cluster tests, from `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test). Each
 * layer gets its own table prefix (dropped afterwards). When PostgreSQL is unreachable the tests are skipped with a
 * warning, except under `CI=true`, where they run and fail.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"

export const postgresUrl =
  process.env.DATABASE_URL !== undefined && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL)
    ? process.env.DATABASE_URL
    : "postgres://postgres@127.0.0.1:5432/test"

const isCi = process.env.CI === "true"

const probe = await Effect.runPromise(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT 1`
  }).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(postgresUrl), connectTimeout: "3 seconds" })),
    Effect.timeout("5 seconds"),
    Effect.match({
      onFailure: (error) => ({ ok: false as const, reason: String(error) }),
      onSuccess: () => ({ ok: true as const, reason: "" })
    })
  )
)
if (!probe.ok) {
  if (isCi) console.error(`PostgreSQL at ${postgresUrl} is unreachable (${probe.reason}); CI=true, so its tests fail`)
  else console.warn(`PostgreSQL at ${postgresUrl} is unreachable (${probe.reason}): skipping the cluster tests`)
}

/** Whether the PostgreSQL tests run. */
export const isAvailable = probe.ok || isCi

/** `describe`, or a visibly named skipped block when PostgreSQL is unreachable. */
export const describePostgres = (name: string, body: () => void): void => {
  if (isAvailable) describe(name, body)
  else describe.skip(`${name} (skipped: PostgreSQL unreachable at ${postgresUrl})`, body)
}

/** A table prefix unique to one test: `tt_<pid>_<random>`. */
export const uniquePrefix = (): string => `tt_${process.pid}_${crypto.randomBytes(4).toString("hex")}`

/** A PgClient on the test database. */
export const client: Layer.Layer<SqlClient.SqlClient> = PgClient.layer({ url: Redacted.make(postgresUrl) }).pipe(
  Layer.orDie
)

/** Drops every table whose name starts with `prefix` when the scope closes. */
export const dropTables = (prefix: string): Effect.Effect<void, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const tables = yield* sql<{ tablename: string }>`SELECT tablename FROM pg_tables
          WHERE schemaname = current_schema() AND tablename LIKE ${`${prefix}\\_%`}`
        for (const { tablename } of tables) yield* sql`DROP TABLE IF EXISTS ${sql(tablename)} CASCADE`
      }).pipe(Effect.ignoreLogged)
    )
  })
