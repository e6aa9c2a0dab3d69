/**
 * The database drivers, imported only when their layer is built: both are optional peer dependencies, so an
 * application on PostgreSQL never loads (or installs) SQLite's, and the other way round.
 */
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { ConfigError, Layer, Redacted } from "effect"

/** A driver that could not be imported. */
export interface Missing {
  readonly driver: string
  readonly message: string
}

const load = <A>(driver: string, importDriver: () => Promise<A>): Effect.Effect<A, Missing> =>
  Effect.tryPromise({
    try: importDriver,
    catch: (error): Missing => ({
      driver,
      message: `${driver} could not be loaded (${error instanceof Error ? error.message : String(error)}); install it next to @tether/sql: npm install ${driver}`
    })
  })

type ClientLayer = Layer.Layer<SqlClient.SqlClient, SqlError | ConfigError.ConfigError>

/** SQLite's client layer on `filename`, whose directory is created first. */
export const sqlite = (filename: string): Effect.Effect<ClientLayer, Missing> =>
  Effect.flatMap(
    load("@effect/sql-sqlite-node", () => import("@effect/sql-sqlite-node")),
    ({ SqliteClient }) =>
      Effect.promise(async (): Promise<ClientLayer> => {
        if (filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")) {
          const [fs, path] = await Promise.all([import("node:fs"), import("node:path")])
          fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true })
        }
        return SqliteClient.layer({ filename })
      })
  )

/** PostgreSQL's client layer on `url`. */
export const pg = (url: Redacted.Redacted): Effect.Effect<ClientLayer, Missing> =>
  Effect.map(
    load("@effect/sql-pg", () => import("@effect/sql-pg")),
    ({ PgClient }) => PgClient.layer({ url })
  )
