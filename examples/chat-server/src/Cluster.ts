/**
 * The chat server as one replica of a cluster (`@tether/cluster`), chosen when `CLUSTER_RUNNER_PORT` is set: the
 * runner of `@effect/cluster` on PostgreSQL (`DATABASE_URL`), the session entity running the assistant on whichever
 * replica owns the session, the session routes over `ClusterSessionRuns`, and the orders and sessions in the same
 * database, every commit fenced by its run's row (`RunFence.layerStagedWrites`). A Stop sent to any replica stops the
 * run on the replica that owns it; a session has one run at a time across the cluster.
 *
 * Settings: `CLUSTER_RUNNER_PORT` (this replica's runner port, one per replica), `CLUSTER_RUNNER_HOST` (the address the
 * other replicas reach it at; default 127.0.0.1), `CLUSTER_PREFIX` (the table prefix, the same on every replica;
 * default `tether_chat`), `REPLICA_NAME` (shown by the page and in the `x-tether-replica` header; default the runner's
 * address), `DATABASE_URL` (PostgreSQL, required).
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import * as ChatServer from "./ChatServer.js"
 * import * as Cluster from "./Cluster.js"
 * import * as Model from "./Model.js"
 *
 * const options: Cluster.Options = {
 *   replica: "replica-1",
 *   runnerHost: "127.0.0.1",
 *   runnerPort: 34431,
 *   prefix: "tether_chat",
 *   databaseUrl: Redacted.make("postgres://postgres@127.0.0.1:5432/test")
 * }
 * const main = ChatServer.layerWithRuns(
 *   { port: 3001, secret: Redacted.make("the same 32 bytes or more on every replica"), replica: options.replica },
 *   Cluster.sessionRuns
 * ).pipe(Layer.provideMerge(Cluster.layer(options)), Layer.provideMerge(Model.layerFromEnv))
 * ```
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { ClusterRunner, ClusterSessionRuns, RunFence, SessionEntity } from "@tether/cluster"
import { RunRegistry } from "@tether/core"
import { Config, Effect, Layer, Option } from "effect"
import type { ConfigError, Redacted } from "effect"
import * as Assistant from "./Assistant.js"
import * as RunLog from "./RunLog.js"
import * as Storage from "./Storage.js"

/** @since 0.1.0 */
export interface Options {
  /** The replica's name, for the page and the `x-tether-replica` header. */
  readonly replica: string
  /** The address the other replicas reach this replica's runner at. */
  readonly runnerHost: string
  readonly runnerPort: number
  /** The prefix of every table of the cluster: the engine's, the run rows, the records and the sessions. */
  readonly prefix: string
  readonly databaseUrl: Redacted.Redacted<string>
  readonly assistant?: Assistant.Options | undefined
}

/** The default table prefix. @since 0.1.0 */
export const defaultPrefix = "tether_chat"

/**
 * The cluster settings from the environment; `None` when `CLUSTER_RUNNER_PORT` is not set (one process).
 *
 * @since 0.1.0
 */
export const fromEnv: Effect.Effect<Option.Option<Options>, ConfigError.ConfigError> = Effect.gen(function* () {
  const port = yield* Config.option(Config.port("CLUSTER_RUNNER_PORT"))
  if (Option.isNone(port)) return Option.none()
  const runnerHost = yield* Config.string("CLUSTER_RUNNER_HOST").pipe(Config.withDefault("127.0.0.1"))
  const replica = yield* Config.option(Config.string("REPLICA_NAME"))
  return Option.some({
    replica: Option.getOrElse(replica, () => `${runnerHost}:${port.value}`),
    runnerHost,
    runnerPort: port.value,
    prefix: yield* Config.string("CLUSTER_PREFIX").pipe(Config.withDefault(defaultPrefix)),
    databaseUrl: yield* Config.redacted("DATABASE_URL")
  })
})

/**
 * This replica: the runner, the run rows, the session entity running the assistant, the `RunRegistry` of its runs
 * (logged, `RunLog`) and the storage (`StagedWrites` fenced by the run rows, `Orders`, `SessionStore`), all on one
 * PostgreSQL client. It needs the model.
 *
 * @since 0.1.0
 */
export const layer = (options: Options) => {
  const owner = `${options.replica}/${options.runnerHost}:${options.runnerPort}/${process.pid}`
  const storage = Storage.layerOnRecords("PostgreSQL (cluster)", `${options.prefix}_sessions`).pipe(
    Layer.provideMerge(RunFence.layerStagedWrites({ recordsTable: `${options.prefix}_records` }))
  )
  const services = Layer.mergeAll(
    storage,
    RunLog.layer.pipe(Layer.provide(RunRegistry.layer())),
    ClusterRunner.layer({ host: options.runnerHost, port: options.runnerPort, prefix: options.prefix })
  )
  const agent = Assistant.make(options.assistant ?? {})
  return SessionEntity.layer({ agent }).pipe(
    Layer.provideMerge(services),
    Layer.provideMerge(RunFence.layer({ prefix: options.prefix, owner })),
    Layer.provideMerge(PgClient.layer({ url: options.databaseUrl }))
  )
}

/**
 * The session routes' runs on this replica: `ClusterSessionRuns` (each operation an RPC to the session's entity) and
 * the replica's `RunRegistry` (from `layer`), which the server's shutdown drains.
 *
 * @since 0.1.0
 */
export const sessionRuns = Layer.merge(
  ClusterSessionRuns.layer(),
  Layer.effect(RunRegistry.RunRegistry, RunRegistry.RunRegistry)
)
