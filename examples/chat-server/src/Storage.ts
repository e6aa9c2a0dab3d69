/**
 * Where orders and sessions are written: SQLite in `.data/chat.db` by default,
 * PostgreSQL when `DATABASE_URL` is set. Staged writes go through
 * `SqlStagedWrites`; the `Orders` service reads back what was committed; the
 * sessions (owners and conversations) are rows of `SqlSessionStore`, so a
 * conversation outlives a restart of the server.
 *
 * @example
 * ```ts
 * import * as Storage from "./Storage.js"
 *
 * const storage = Storage.layerSqlite(".data/chat.db") // StagedWrites, Orders, SessionStore
 * ```
 *
 * @since 0.1.0
 */
import * as path from "node:path"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { ConfigError } from "effect"
import type { StagedWrites } from "@tether/core"
import type { SessionStore } from "@tether/core"
import { SqlSessionStore, SqlStagedWrites } from "@tether/sql"
import { Order, ordersTable } from "./Assistant.js"

/** @since 0.1.0 */
export interface Service {
  /** Every committed order, newest first (for the server's side: tests, operators). Staged orders are not listed. */
  readonly list: Effect.Effect<ReadonlyArray<Order>>
  /** The committed orders of `owner`, newest first: what `GET /orders` answers. */
  readonly ownedBy: (owner: string) => Effect.Effect<ReadonlyArray<Order>>
  /** What backs the store, for the page: "SQLite (chat.db)", "PostgreSQL" (no path: clients see it). */
  readonly label: string
}

/** @since 0.1.0 */
export class Orders extends Context.Tag("@tether/example-chat-server/Orders")<Orders, Service>() {}

const decodeOrder = Schema.decodeUnknownOption(Order)

const ordersLayer = (label: string) =>
  Layer.effect(
    Orders,
    Effect.map(SqlStagedWrites.Records, (records) => {
      const list = records.list(ordersTable).pipe(
        Effect.map((rows) =>
          rows
            .flatMap(([, value]) => Option.toArray(decodeOrder(value)))
            .sort((a, b) => b.stagedAt.localeCompare(a.stagedAt))
        ),
        Effect.orDie
      )
      return {
        label,
        list,
        ownedBy: (owner: string) => Effect.map(list, (orders) => orders.filter((order) => order.owner === owner))
      }
    })
  )

/** What the storage provides. @since 0.1.0 */
export type Provided = StagedWrites.StagedWrites | Orders | SessionStore.SessionStore

/**
 * Orders and sessions on the records of a `SqlStagedWrites` layer and its `SqlClient` (the cluster's fenced staged
 * writes, say); `label` is what the page shows.
 *
 * @since 0.1.0
 */
export const layerOnRecords = (label: string, sessionsTable: string | undefined) =>
  Layer.merge(ordersLayer(label), SqlSessionStore.layer({ sessionsTable }))

/** Why the store could not open: the database failed, or its configuration is bad. @since 0.1.0 */
export type StorageError = Layer.Layer.Error<ReturnType<typeof SqlStagedWrites.layerSqlite>> | ConfigError.ConfigError

/** The default database file, relative to the working directory. @since 0.1.0 */
export const defaultSqliteFile = ".data/chat.db"

/** SQLite in `filename` (its directory is created). @since 0.1.0 */
export const layerSqlite = (filename: string): Layer.Layer<Provided, StorageError> =>
  layerOnRecords(`SQLite (${path.basename(filename)})`, undefined).pipe(
    Layer.provideMerge(SqlStagedWrites.layerSqlite({ filename }))
  )

/**
 * PostgreSQL at `url`; the records go to `recordsTable` (default `SqlStagedWrites`'s, `tether_records`), the
 * sessions to `sessionsTable` (default `SqlSessionStore`'s, `tether_sessions`).
 *
 * @since 0.1.0
 */
export const layerPg = (
  url: Redacted.Redacted<string>,
  options: { readonly recordsTable?: string | undefined; readonly sessionsTable?: string | undefined } = {}
): Layer.Layer<Provided, StorageError> =>
  layerOnRecords("PostgreSQL", options.sessionsTable).pipe(
    Layer.provideMerge(SqlStagedWrites.layerPg({ url, recordsTable: options.recordsTable }))
  )

/** PostgreSQL when `DATABASE_URL` is set, else SQLite in `CHAT_DB_FILE` (default `.data/chat.db`). @since 0.1.0 */
export const layerFromEnv: Layer.Layer<Provided, StorageError> = Layer.unwrapEffect(
  Effect.gen(function* () {
    const url = yield* Config.redacted("DATABASE_URL").pipe(Config.withDefault(Redacted.make("")))
    const file = yield* Config.string("CHAT_DB_FILE").pipe(Config.withDefault(defaultSqliteFile))
    return Redacted.value(url).trim() !== "" ? layerPg(url) : layerSqlite(file)
  })
)
