/**
 * The databases every test runs on: SQLite always (a temp file per layer) and
 * PostgreSQL from `DATABASE_URL` (tables named with a unique suffix, dropped
 * afterwards). When PostgreSQL is unreachable its tests are skipped with a
 * warning, except when `CI=true`, where they run and fail.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, it } from "@effect/vitest"
import type { StagedWrites } from "@tether/core"
import { Context, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SqlStagedWrites } from "../../src/index.js"

/** Names and dialect details of one isolated test database. */
export interface Namespace {
  readonly dialect: "sqlite" | "pg"
  /** Where the layer points: the SQLite file or the PostgreSQL URL. */
  readonly location: string
  readonly recordsTable: string
  /** A table name unique to this namespace: `orders` -> `orders_<suffix>`. */
  readonly table: (base: string) => string
  /** The n-th (1-based) positional parameter: `?` on SQLite, `$n` on PostgreSQL. */
  readonly param: (n: number) => string
  /** A statement that keeps the database busy for about `seconds`. */
  readonly slowStatement: (seconds: number) => string
}

export class TestNamespace extends Context.Tag("test/TestNamespace")<TestNamespace, Namespace>() {}

export type TestServices = StagedWrites.StagedWrites | SqlStagedWrites.Records | SqlClient.SqlClient | TestNamespace

export interface TestDatabase {
  readonly name: "sqlite" | "postgres"
  readonly isAvailable: boolean
  readonly unavailableReason: string
  /** A fresh, isolated database (new file or new tables) for one test or one group. */
  readonly layer: () => Layer.Layer<TestServices>
}

const uniqueSuffix = () => `${process.pid}_${crypto.randomBytes(4).toString("hex")}`

const sqliteLayer = (): Layer.Layer<TestServices> => {
  const suffix = uniqueSuffix()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-sql-"))
  const filename = path.join(dir, "tether.db")
  const namespace: Namespace = {
    dialect: "sqlite",
    location: filename,
    recordsTable: "tether_records",
    table: (base) => `${base}_${suffix}`,
    param: () => "?",
    // A recursive CTE of n rows: roughly 2.5 million rows a second here.
    slowStatement: (seconds) =>
      `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${Math.round(seconds * 2_500_000)}) SELECT count(*) FROM c`
  }
  const cleanup = Layer.scopedDiscard(
    Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  )
  return Layer.mergeAll(SqlStagedWrites.layerSqlite({ filename }), Layer.succeed(TestNamespace, namespace)).pipe(
    Layer.provideMerge(cleanup),
    Layer.orDie
  )
}

export const postgresUrl =
  process.env.DATABASE_URL !== undefined && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL)
    ? process.env.DATABASE_URL
    : "postgres://postgres@127.0.0.1:5432/test"

const postgresLayer = (): Layer.Layer<TestServices> => {
  const suffix = uniqueSuffix()
  const created = new Set<string>()
  const namespace: Namespace = {
    dialect: "pg",
    location: postgresUrl,
    recordsTable: `tether_records_${suffix}`,
    table: (base) => {
      const name = `${base}_${suffix}`
      created.add(name)
      return name
    },
    param: (n) => `$${n}`,
    slowStatement: (seconds) => `SELECT pg_sleep(${seconds})`
  }
  created.add(namespace.recordsTable)
  const dropTables = Layer.scopedDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() =>
        // (A sessions table `name` has its messages in `name_messages`.)
        Effect.forEach(created, (name) => sql`DROP TABLE IF EXISTS ${sql(name)}, ${sql(`${name}_messages`)}`, {
          discard: true
        }).pipe(Effect.ignoreLogged)
      )
    })
  )
  const client = PgClient.layer({ url: Redacted.make(postgresUrl) })
  return Layer.mergeAll(
    SqlStagedWrites.layer({ recordsTable: namespace.recordsTable }),
    Layer.succeed(TestNamespace, namespace)
  ).pipe(Layer.provideMerge(dropTables), Layer.provideMerge(client), Layer.orDie)
}

const probePostgres = Effect.gen(function* () {
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

const isCi = process.env.CI === "true"
const probe = await Effect.runPromise(probePostgres)
if (!probe.ok) {
  if (isCi)
    console.error(`PostgreSQL at ${postgresUrl} is unreachable (${probe.reason}); CI=true, so its tests run and fail`)
  // Straight to stderr: a skip must be seen even though the passing tests' console output is not shown.
  else process.stderr.write(`PostgreSQL at ${postgresUrl} is unreachable (${probe.reason}): skipping its tests\n`)
}

export const sqlite: TestDatabase = { name: "sqlite", isAvailable: true, unavailableReason: "", layer: sqliteLayer }

export const postgres: TestDatabase = {
  name: "postgres",
  isAvailable: probe.ok || isCi,
  unavailableReason: probe.reason,
  layer: postgresLayer
}

export const databases: ReadonlyArray<TestDatabase> = [sqlite, postgres]

/** Declares `body` once per database; an unreachable PostgreSQL makes a skipped, visibly named block. */
export const describeEachDatabase = (body: (db: TestDatabase) => void): void => {
  for (const db of databases) {
    if (db.isAvailable) describe(db.name, () => body(db))
    else describe.skip(`${db.name} (skipped: unreachable at ${postgresUrl})`, () => body(db))
  }
}

/** A live test on a fresh database of `db` (a new file or new tables for each test). */
export const liveTest =
  (db: TestDatabase) =>
  <A, E>(name: string, self: () => Effect.Effect<A, E, TestServices>): void =>
    it.live(name, () => Effect.provide(self(), db.layer()))
