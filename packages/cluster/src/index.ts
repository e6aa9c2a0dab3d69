/**
 * @tether/cluster: Tether's cluster mode on `@effect/cluster` and PostgreSQL. Each session is an entity living on
 * the replica that owns its shard; its runs are claimed in PostgreSQL before they start (at most once per run id, one
 * at a time per session) and their commits are fenced by the run's epoch.
 *
 * @example
 * ```ts
 * import { RunFence } from "@tether/cluster"
 *
 * console.log(RunFence.defaultPrefix) // "tether_cluster"
 * ```
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as RunFence from "./RunFence.js"

/** @since 0.1.0 */
export * as SessionEntity from "./SessionEntity.js"

/** @since 0.1.0 */
export * as ClusterRunner from "./ClusterRunner.js"

/** @since 0.1.0 */
export * as ClusterSessionRuns from "./ClusterSessionRuns.js"
