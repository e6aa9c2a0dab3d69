/**
 * PostgreSQL for the cluster-mode tests, from `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test): a
 * fresh database per test file (the engine's shard locks do not depend on the table prefix), dropped afterwards.
 * When PostgreSQL is unreachable the tests are skipped with a line on stderr, except under `CI=true`, where they run
 * and fail.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"

export const postgresUrl =
  process.env.DATABASE_URL !== undefined && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL)
    ? process.env.DATABASE_URL
    : "postgres://postgres@127.0.0.1:5432/test"

/** A client of the database at `url`. */
export const client = (url: string): Layer.Layer<SqlClient.SqlClient> =>
  PgClient.layer({ url: Redacted.make(url), connectTimeout: "3 seconds" }).pipe(Layer.orDie)

const unreachable = await Effect.runPromise(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(postgresUrl), connectTimeout: "3 seconds" })),
    Effect.timeout("5 seconds"),
    Effect.match({ onFailure: (error) => String(error), onSuccess: () => "" })
  )
)
const isCi = process.env.CI === "true"
// Straight to stderr: a skip must be seen even though the passing tests' console output is not shown.
if (unreachable !== "" && !isCi) {
  process.stderr.write(
    `PostgreSQL at ${postgresUrl} is unreachable (${unreachable}): skipping the cluster-mode tests\n`
  )
}

/** Whether the PostgreSQL tests run. */
export const isAvailable = unreachable === "" || isCi

/** A database of its own, dropped (with whatever is still connected to it) when the scope closes; its URL. */
export const freshDatabase: Effect.Effect<string, never, Scope.Scope> = Effect.gen(function* () {
  const name = `tt_chat_cluster_${process.pid}_${crypto.randomBytes(3).toString("hex")}`
  const onServer = <A, E>(statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
    Effect.flatMap(SqlClient.SqlClient, statement).pipe(Effect.provide(client(postgresUrl)))
  yield* Effect.acquireRelease(Effect.orDie(onServer((sql) => sql`CREATE DATABASE ${sql(name)}`)), () =>
    Effect.ignoreLogged(onServer((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`))
  )
  const location = new URL(postgresUrl)
  location.pathname = `/${name}`
  return location.toString()
})
