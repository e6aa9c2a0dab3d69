/**
 * `StagedWrites` on a SQL database. A run's writes stay in the run's memory
 * until it commits; the commit applies all of them in one short database
 * transaction, so a long run holds no lock and no connection, readers see
 * nothing of it until it has committed, and a crash before the commit leaves
 * nothing behind.
 *
 * Upserts and deletes go to one key-value table (`tether_records` by
 * default); statements run as written, inside the same transaction.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StagedWrites } from "@tether/core"
 * import { SqlStagedWrites } from "@tether/sql"
 *
 * const program = Effect.gen(function* () {
 *   const staged = yield* StagedWrites.StagedWrites
 *   yield* Effect.scoped(
 *     Effect.gen(function* () {
 *       const tx = yield* staged.begin("run-1")
 *       yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
 *       yield* Effect.uninterruptible(tx.commit)
 *     })
 *   )
 *   return yield* SqlStagedWrites.read("orders", "o-1") // Option.some({ total: 3 })
 * }).pipe(Effect.provide(SqlStagedWrites.layerSqlite({ filename: ".data/tether.db" })))
 * ```
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { StagedWrites } from "@tether/core"
import { Config, Context, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import type { ConfigError, Option } from "effect"
import * as Drivers from "./internal/drivers.js"
import * as RecordsTable from "./internal/records.js"
import * as Transaction from "./internal/transaction.js"

/**
 * The database driver a layer needs is not installed: `layerSqlite` needs `@effect/sql-sqlite-node`, `layerPg`
 * needs `@effect/sql-pg` (both optional peer dependencies, so that an application installs only its own).
 *
 * @since 0.1.0
 * @category errors
 */
export class DriverMissingError extends Schema.TaggedError<DriverMissingError>()("DriverMissingError", {
  driver: Schema.String,
  message: Schema.String
}) {}

/** @since 0.1.0 */
export interface Options {
  /** The key-value table for upserts and deletes. Default `"tether_records"`. */
  readonly recordsTable?: string | undefined
  /**
   * When a commit that failed transiently is attempted again: a connection refused or lost before the COMMIT was
   * sent, a serialization failure or deadlock (PostgreSQL), a locked file (SQLite). Nothing was applied, so the whole
   * transaction runs again. Default `defaultCommitRetry` (3 more attempts over about a second). A connection lost
   * after the COMMIT was sent is never retried: the commit fails with `CommitOutcomeUnknownError`.
   */
  readonly commitRetry?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * Runs inside each commit's database transaction, after PostgreSQL's commit lock and before the run's writes.
   * Failing with `CommitFencedError` rolls the transaction back, so nothing of the run is applied, and the commit
   * fails with that error (never retried); a `SqlError` fails the commit as a failed write would. It must query through
   * the same `SqlClient` (so it runs on the transaction's connection). `@tether/cluster` checks a run's epoch here.
   */
  readonly beforeCommit?:
    ((runId: string) => Effect.Effect<void, StagedWrites.CommitFencedError | SqlError>) | undefined
}

/**
 * The default `commitRetry`: 3 more attempts, 100 ms apart and doubling, jittered.
 *
 * @since 0.1.0
 */
export const defaultCommitRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(3))
)

/**
 * Read access to committed records, for tests, examples and tools that look
 * up what earlier runs wrote. Staged writes of runs still going are invisible.
 *
 * @since 0.1.0
 */
export interface CommittedRecords {
  /** The committed value of `table[key]`, if any. */
  readonly read: (table: string, key: string) => Effect.Effect<Option.Option<unknown>, SqlError>
  /** Every committed `[key, value]` of `table`, ordered by key. */
  readonly list: (table: string) => Effect.Effect<ReadonlyArray<readonly [key: string, value: unknown]>, SqlError>
  /** Everything committed: table -> key -> value (the shape of core's in-memory snapshot). */
  readonly snapshot: Effect.Effect<StagedWrites.Snapshot, SqlError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Records extends Context.Tag("@tether/sql/SqlStagedWrites/Records")<Records, CommittedRecords>() {}

const build = (options: Options) =>
  Effect.gen(function* () {
    // Without the client's name transforms: our column names are read and written as they are.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const dialect = yield* RecordsTable.dialectOf(sql)
    const records = yield* RecordsTable.checkRecordsTable(options.recordsTable ?? RecordsTable.defaultRecordsTable)
    yield* RecordsTable.migrate(sql, dialect, records)
    const backend: Transaction.Backend = {
      sql,
      dialect,
      records,
      commitRetry: options.commitRetry ?? defaultCommitRetry,
      beforeCommit: options.beforeCommit
    }
    const service: StagedWrites.Service = { begin: (runId) => Transaction.begin(backend, runId) }
    const committed: CommittedRecords = {
      read: (table, key) => RecordsTable.read(sql, dialect, records, table, key),
      list: (table) => RecordsTable.list(sql, dialect, records, table),
      snapshot: RecordsTable.snapshot(sql, dialect, records)
    }
    return { service, committed }
  })

/**
 * Builds the service on the `SqlClient` in context (SQLite or PostgreSQL) and
 * creates its table if missing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<StagedWrites.Service, SqlError, SqlClient.SqlClient> =>
  Effect.map(build(options), ({ service }) => service)

/**
 * `StagedWrites` and `Records` on the `SqlClient` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<StagedWrites.StagedWrites | Records, SqlError, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.map(build(options), ({ committed, service }) =>
      Context.make(StagedWrites.StagedWrites, service).pipe(Context.add(Records, committed))
    )
  )

/**
 * An embedded SQLite database in `filename` (its directory is created). Also
 * provides the `SqlClient`: use it for your own queries rather than opening a
 * second client on the same file. Needs `@effect/sql-sqlite-node` installed
 * (Node only); without it the layer fails with `DriverMissingError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (
  options: Options & { readonly filename: string }
): Layer.Layer<
  StagedWrites.StagedWrites | Records | SqlClient.SqlClient,
  SqlError | ConfigError.ConfigError | DriverMissingError
> =>
  layer(options).pipe(
    Layer.provideMerge(
      Layer.unwrapEffect(
        Effect.mapError(
          Drivers.sqlite(options.filename),
          (missing) => new DriverMissingError({ driver: missing.driver, message: missing.message })
        )
      )
    )
  )

/**
 * A PostgreSQL database at `url`. Also provides the `SqlClient`. For other
 * client options, build a `PgClient` layer yourself and provide it to `layer`.
 * Needs `@effect/sql-pg` installed; without it the layer fails with
 * `DriverMissingError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  options: Options & { readonly url: string | Redacted.Redacted }
): Layer.Layer<
  StagedWrites.StagedWrites | Records | SqlClient.SqlClient,
  SqlError | ConfigError.ConfigError | DriverMissingError
> =>
  layer(options).pipe(
    Layer.provideMerge(
      Layer.unwrapEffect(
        Effect.mapError(
          Drivers.pg(Redacted.isRedacted(options.url) ? options.url : Redacted.make(options.url)),
          (missing) => new DriverMissingError({ driver: missing.driver, message: missing.message })
        )
      )
    )
  )

/**
 * Picks the database from the environment: PostgreSQL when `DATABASE_URL` is
 * set to a `postgres://` or `postgresql://` URL, otherwise SQLite in the file
 * `TETHER_SQLITE_FILE` (default `.data/tether.db`). `TETHER_RECORDS_TABLE`
 * names the key-value table (default `tether_records`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  StagedWrites.StagedWrites | Records | SqlClient.SqlClient,
  SqlError | ConfigError.ConfigError | DriverMissingError
> = Layer.unwrapEffect(
  Effect.gen(function* () {
    const url = yield* Config.string("DATABASE_URL").pipe(Config.withDefault(""))
    const filename = yield* Config.string("TETHER_SQLITE_FILE").pipe(Config.withDefault(".data/tether.db"))
    const recordsTable = yield* Config.string("TETHER_RECORDS_TABLE").pipe(
      Config.withDefault(RecordsTable.defaultRecordsTable)
    )
    return /^postgres(ql)?:\/\//.test(url)
      ? layerPg({ url: Redacted.make(url), recordsTable })
      : layerSqlite({ filename, recordsTable })
  })
)

/**
 * The committed value of `table[key]`.
 *
 * @since 0.1.0
 * @category reading
 */
export const read = (table: string, key: string): Effect.Effect<Option.Option<unknown>, SqlError, Records> =>
  Effect.flatMap(Records, (records) => records.read(table, key))

/**
 * Every committed `[key, value]` of `table`, ordered by key.
 *
 * @since 0.1.0
 * @category reading
 */
export const list = (
  table: string
): Effect.Effect<ReadonlyArray<readonly [key: string, value: unknown]>, SqlError, Records> =>
  Effect.flatMap(Records, (records) => records.list(table))

/**
 * Everything committed: table -> key -> value.
 *
 * @since 0.1.0
 * @category reading
 */
export const snapshot: Effect.Effect<StagedWrites.Snapshot, SqlError, Records> = Effect.flatMap(
  Records,
  (records) => records.snapshot
)
