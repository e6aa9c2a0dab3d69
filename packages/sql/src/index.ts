/**
 * @tether/sql: staged writes for Tether runs on SQLite or PostgreSQL. A run's
 * writes land in one short transaction when it succeeds, never when it fails,
 * is interrupted or its process dies. `SqlSessionStore` keeps @tether/http's
 * sessions (owners, conversations) in the same database.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agent, AgentRun } from "@tether/core"
 * import { SqlStagedWrites } from "@tether/sql"
 *
 * declare const agent: Agent.Agent<never>
 * const program = AgentRun.run(agent, "buy o-1").pipe(
 *   Effect.zipRight(SqlStagedWrites.read("orders", "o-1")),
 *   Effect.provide(SqlStagedWrites.layerConfig)
 * )
 * ```
 *
 * @since 0.1.0
 */
export * as SqlSessionStore from "./SqlSessionStore.js"
export * as SqlStagedWrites from "./SqlStagedWrites.js"
