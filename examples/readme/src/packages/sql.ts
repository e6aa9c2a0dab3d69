import { Console, Effect, Layer, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import { ScriptedModel } from "@tether/testing"

const recordOrder = Tool.make({
  name: "record_order",
  description: "Records an order",
  input: Schema.Struct({ id: Schema.String, item: Schema.String }),
  output: Schema.String,
  handler: (order) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", order.id, order)), "recorded")
})

const shop = Agent.make({ name: "shop", tools: [recordOrder] })

const model = ScriptedModel.layer([
  [ScriptedModel.toolUse("record_order", { id: "o-1", item: "lamp" })],
  ScriptedModel.text("Recorded.")
])

const program = Effect.gen(function* () {
  yield* AgentRun.run(shop, "Order a lamp")
  // The run completed, so its write committed, in one short transaction.
  yield* Console.log(yield* SqlStagedWrites.read("orders", "o-1"))
})

// SQLite in shop.db; SqlStagedWrites.layerPg({ url }) for PostgreSQL, or layerConfig (DATABASE_URL).
const storage = SqlStagedWrites.layerSqlite({ filename: "shop.db" })
program.pipe(Effect.provide(Layer.merge(model, storage)), Effect.runPromise)
