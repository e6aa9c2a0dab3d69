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
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Layer, Option, Schedule } from "effect"
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
  // The storage's tables are made by the first replica to start; one starting at the same instant can find them half
  // made (its migration sees the migrations table but not yet the shards table) and fail: it tries again, briefly.
  const storage = Layer.mergeAll(SqlMessageStorage.layerWith({ prefix }), SqlRunnerStorage.layerWith({ prefix })).pipe(
    Layer.provide(ShardingConfig.layer(config)),
    Layer.retry(Schedule.intersect(Schedule.spaced("250 millis"), Schedule.recurs(20)))
  )
  return NodeClusterSocket.layer({ storage: "byo", runnerHealth: "ping", shardingConfig: config }).pipe(
    Layer.provideMerge(storage)
  )
}
