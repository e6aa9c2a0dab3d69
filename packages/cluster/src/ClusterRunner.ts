/**
 * A replica's runner: `@effect/cluster`'s socket runner (`@effect/platform-node`) on PostgreSQL, set up for Tether.
 * The runner's address is always given (never read from `HOST` / `PORT`, which would make an HTTP server's port the
 * runner's), every table shares one prefix, and the lock timings default to `failoverTimings`, under which a killed
 * replica's shards moved in about 4.5 s on loopback (35 s with the engine's defaults).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { ClusterRunner } from "@tether/cluster"
 *
 * // Every replica on its own address; all of them on the same database and prefix.
 * const runner = ClusterRunner.layer({ host: "10.0.0.7", port: 34431, prefix: "tether_cluster" })
 * // provided with a PgClient layer: runner.pipe(Layer.provide(PgClient.layer({ url })))
 * ```
 *
 * @since 0.1.0
 */
import type { MessageStorage, Runners, Sharding } from "@effect/cluster"
import { RunnerAddress, ShardingConfig, SqlMessageStorage, SqlRunnerStorage } from "@effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import type { SocketServerError } from "@effect/platform/SocketServer"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect"
import { defaultPrefix } from "./RunFence.js"

/**
 * Lock timings for a quick failover: a replica killed with -9 had its shards moved after about 4.5 s on loopback (two
 * runner processes on PostgreSQL), against about 30 s with the engine's defaults (35 s lock expiration, 10 s refresh).
 * `entityTerminationTimeout` is lowered from 15 s so that a replica shutting down does not wait that long for a
 * handler that ignores interruption.
 *
 * @since 0.1.0
 */
export const failoverTimings: Partial<ShardingConfig.ShardingConfig["Type"]> = {
  shardLockExpiration: Duration.seconds(6),
  shardLockRefreshInterval: Duration.seconds(2),
  refreshAssignmentsInterval: Duration.millis(500),
  runnerHealthCheckInterval: Duration.seconds(2),
  entityTerminationTimeout: Duration.seconds(5)
}

/** @since 0.1.0 */
export interface Options {
  /** The address other replicas reach this runner at. */
  readonly host: string
  readonly port: number
  /** The address to listen on, when it differs (`0.0.0.0` in a container). Default: `host`. */
  readonly listenHost?: string | undefined
  /**
   * The prefix of every table: the engine's (`{prefix}_runners`, `_locks`, `_messages`, `_replies`) and the run rows
   * (`{prefix}_runs`, give the same prefix to `RunFence`). Default `"tether_cluster"`. The shard advisory locks do
   * not depend on it (on this engine version): one cluster per database.
   */
  readonly prefix?: string | undefined
  /** Anything else of the engine's configuration; it wins over `failoverTimings`. */
  readonly shardingConfig?: Partial<ShardingConfig.ShardingConfig["Type"]> | undefined
}

/**
 * The runner (`Sharding`, `Runners`, `MessageStorage`) on the `SqlClient` in context (PostgreSQL).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage,
  SocketServerError | ConfigError.ConfigError | SqlError,
  SqlClient.SqlClient
> => {
  const prefix = options.prefix ?? defaultPrefix
  // Complete, so that nothing is left to the environment (`HOST`, `PORT`, ...) that the socket layer also reads.
  const config: ShardingConfig.ShardingConfig["Type"] = {
    ...ShardingConfig.defaults,
    ...failoverTimings,
    runnerAddress: Option.some(RunnerAddress.make(options.host, options.port)),
    runnerListenAddress: Option.some(RunnerAddress.make(options.listenHost ?? options.host, options.port)),
    ...options.shardingConfig
  }
  const storage = oneReplicaAtATime(
    prefix,
    Layer.mergeAll(SqlMessageStorage.layerWith({ prefix }), SqlRunnerStorage.layerWith({ prefix })).pipe(
      Layer.provide(ShardingConfig.layer(config))
    )
  )
  return NodeClusterSocket.layer({ storage: "byo", runnerHealth: "ping", shardingConfig: config }).pipe(
    Layer.provideMerge(storage)
  )
}

/**
 * Builds the engine's storage while this replica holds a PostgreSQL advisory lock named after the prefix, so that
 * replicas starting at the same instant make its tables one after the other. Without it, two fresh replicas race in
 * the engine's migrator (a plain `CREATE TABLE` of its migrations table), and the loser dies: the migrator's error is
 * a defect, which no retry of the layer sees. The lock is a session lock on a connection reserved for the build, and
 * is released (with the connection) as soon as the storage is built; a replica that dies holding it loses it with
 * its connection.
 */
const oneReplicaAtATime = <A, E, R>(
  prefix: string,
  storage: Layer.Layer<A, E, R>
): Layer.Layer<A, E | SqlError, R | SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const scope = yield* Effect.scope
      const build = Layer.buildWithScope(storage, scope)
      const key = [`tether:cluster:${prefix}`]
      const locked = Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* sql.reserve
          yield* connection.execute("SELECT pg_advisory_lock(hashtext($1))", key, undefined)
          return yield* build.pipe(
            Effect.ensuring(
              Effect.ignore(connection.execute("SELECT pg_advisory_unlock(hashtext($1))", key, undefined))
            )
          )
        })
      )
      return yield* sql.onDialectOrElse({ pg: () => locked, orElse: () => build })
    })
  )
