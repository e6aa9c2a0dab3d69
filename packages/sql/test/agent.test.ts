import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { Agent, AgentRun, CancelReason, StagedWrites, Tool } from "@tether/core"
import { Deferred, Effect, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import { ScriptedModel } from "@tether/testing"
import { SqlStagedWrites } from "../src/index.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"
import type { TestServices } from "./support/TestDatabase.js"

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })

/** A tool that stages an order (a record and a row) and then waits until `proceed` is done. */
const orderTool = (staged: Deferred.Deferred<void>, proceed: Effect.Effect<void>) =>
  Effect.map(TestNamespace, (ns) => {
    const orders = ns.table("orders")
    const tool = Tool.make({
      name: "record_order",
      description: "Records an order",
      input: Order,
      output: Schema.String,
      handler: (order) =>
        Effect.gen(function* () {
          yield* AgentRun.stage(StagedWrites.upsert("orders", order.id, order))
          yield* AgentRun.stage(
            StagedWrites.statement(`INSERT INTO ${orders} (id, total) VALUES (${ns.param(1)}, ${ns.param(2)})`, [
              order.id,
              order.total
            ])
          )
          yield* Deferred.succeed(staged, undefined)
          yield* proceed
          return `recorded ${order.id}`
        })
    })
    return { orders, tool }
  })

const script = [[ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })], ScriptedModel.text("Done.")]

const withAgentDb = <A, E>(
  db: { readonly layer: () => Layer.Layer<TestServices> },
  self: Effect.Effect<A, E, TestServices | Scope.Scope | Layer.Layer.Success<ReturnType<typeof ScriptedModel.layer>>>
) => self.pipe(Effect.scoped, Effect.provide(Layer.merge(db.layer(), ScriptedModel.layer(script))))

describeEachDatabase((db) => {
  it.live("an agent run interrupted while its tool holds a staged order never writes the order", () =>
    withAgentDb(
      db,
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const staged = yield* Deferred.make<void>()
        const { orders, tool } = yield* orderTool(staged, Effect.never)
        yield* sql`CREATE TABLE ${sql(orders)} (id TEXT PRIMARY KEY, total INTEGER NOT NULL)`
        const run = yield* AgentRun.start(Agent.make({ name: "shop", tools: [tool] }), "buy o-1")
        yield* Deferred.await(staged)
        const outcome = yield* run.cancel(new CancelReason.UserAbort())
        expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 2 })
        expect(yield* SqlStagedWrites.read("orders", "o-1")).toEqual(Option.none())
        expect(yield* sql`SELECT id FROM ${sql(orders)}`).toEqual([])
      })
    )
  )

  it.live("an agent run that completes commits its tool's staged order", () =>
    withAgentDb(
      db,
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const staged = yield* Deferred.make<void>()
        const { orders, tool } = yield* orderTool(staged, Effect.void)
        yield* sql`CREATE TABLE ${sql(orders)} (id TEXT PRIMARY KEY, total INTEGER NOT NULL)`
        const run = yield* AgentRun.start(Agent.make({ name: "shop", tools: [tool] }), "buy o-1")
        const outcome = yield* run.outcome
        expect(outcome).toMatchObject({ _tag: "Completed", text: "Done.", writesCommitted: 2 })
        expect(yield* SqlStagedWrites.read("orders", "o-1")).toEqual(Option.some({ id: "o-1", total: 3 }))
        expect(yield* sql`SELECT id, total FROM ${sql(orders)}`).toEqual([{ id: "o-1", total: 3 }])
      })
    )
  )
})
