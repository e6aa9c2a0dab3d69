import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { Agent, AgentRun, RunRegistry, SessionStore, StagedWrites, Tool } from "@tether/core"
import { Auth, GracefulShutdown, SessionRoutes, SessionRuns } from "@tether/http"
import { ScriptedModel } from "@tether/testing"

const checkStock = Tool.make({
  name: "check_stock",
  description: "Units of an item in stock",
  input: Schema.Struct({ item: Schema.String }),
  output: Schema.Number,
  handler: () => Effect.succeed(12)
})
const placeOrder = Tool.make({
  name: "place_order",
  description: "Places an order",
  input: Schema.Struct({ item: Schema.String, quantity: Schema.Number }),
  output: Schema.String,
  handler: (order) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", order.item, order)), "ordered")
})
const shop = Agent.make({ name: "shop", tools: [checkStock, placeOrder] })
const model = ScriptedModel.layer([
  [ScriptedModel.toolUse("place_order", { item: "lamp", quantity: 2 })],
  ScriptedModel.text("Two lamps are on their way.", { chunks: 9, delay: "1 second" })
])

// POST /sessions/:id/messages streams a run as Server-Sent Events; POST /sessions/:id/cancel is Stop.
GracefulShutdown.serve(SessionRoutes.router(shop)).pipe(
  Layer.provide([SessionRuns.layer(), StagedWrites.layerMemory, model]),
  Layer.provide([RunRegistry.layer(), SessionStore.layerMemory()]),
  Layer.provide([Auth.layerBearer({ "dev-token": "alice" }), NodeHttpServer.layer(createServer, { port: 3000 })]),
  Layer.launch,
  NodeRuntime.runMain
)
