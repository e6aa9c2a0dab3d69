/**
 * The chat server on PostgreSQL (`Storage.layerPg`, what `DATABASE_URL` selects): the same order scenarios as on
 * SQLite. Each server's records and sessions go to tables of its own (on SQLite each gets a fresh file), dropped
 * afterwards.
 * Where PostgreSQL is unreachable the tests are skipped with a message, except under `CI=true`, where they run and
 * fail.
 */
import { SqlClient } from "@effect/sql"
import { afterAll, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as crypto from "node:crypto"
import { SqlStagedWrites } from "@tether/sql"
import * as Storage from "../src/Storage.js"
import * as Harness from "./support/harness.js"
import * as Scenarios from "./support/scenarios.js"

const url =
  process.env.DATABASE_URL !== undefined && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL)
    ? process.env.DATABASE_URL
    : "postgres://postgres@127.0.0.1:5432/test"
const tables: Array<string> = []
const newTable = (kind: "records" | "sessions" = "records") => {
  const table = `tether_${kind}_chat_${process.pid}_${crypto.randomBytes(4).toString("hex")}`
  tables.push(table)
  // A sessions table keeps its messages in a table of its own.
  if (kind === "sessions") tables.push(`${table}_messages`)
  return table
}

/** Runs `statement` on the test database, through the layer the server uses (it makes `recordsTable` if missing). */
const onDatabase = <A, E>(recordsTable: string, statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.flatMap(SqlClient.SqlClient, statement).pipe(
    Effect.provide(SqlStagedWrites.layerPg({ url: Redacted.make(url), recordsTable }))
  )

const reachable = await Effect.runPromise(
  onDatabase(newTable(), (sql) => sql`SELECT 1`).pipe(
    Effect.timeout("5 seconds"),
    Effect.match({ onFailure: (error) => String(error), onSuccess: () => "" })
  )
)
const isCi = process.env.CI === "true"
// Straight to stderr: a skip must be seen even though the passing tests' console output is not shown.
if (reachable !== "" && !isCi)
  process.stderr.write(`PostgreSQL at ${url} is unreachable (${reachable}): skipping its tests\n`)

const onPostgres: Scenarios.Start = (offline) =>
  Harness.start(
    offline,
    Storage.layerPg(Redacted.make(url), { recordsTable: newTable(), sessionsTable: newTable("sessions") })
  )

describe.skipIf(reachable !== "" && !isCi)("chat server on PostgreSQL (real SDK against FakeAnthropic)", () => {
  afterAll(() =>
    Effect.runPromise(
      onDatabase(tables[0]!, (sql) =>
        Effect.forEach(tables, (table) => sql`DROP TABLE IF EXISTS ${sql(table)}`, { discard: true })
      ).pipe(Effect.ignoreLogged)
    )
  )

  it.scopedLive("a run that completes commits its order to PostgreSQL", () =>
    Scenarios.completedRunCommitsItsOrder(onPostgres)
  )

  it.scopedLive("Stop while the answer streams: the order rolls back and never reaches PostgreSQL", () =>
    Scenarios.stopRollsBackItsOrder(onPostgres)
  )

  it.scopedLive("a conversation outlives a restart of the server: its session is a row in PostgreSQL", () => {
    const tablesOfOneDatabase = { recordsTable: newTable(), sessionsTable: newTable("sessions") }
    return Scenarios.conversationOutlivesARestart((offline) =>
      Harness.start(offline, Storage.layerPg(Redacted.make(url), tablesOfOneDatabase))
    )
  })
})
