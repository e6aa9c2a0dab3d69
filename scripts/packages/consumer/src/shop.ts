/**
 * The agent of every consumer program: two tools, one of which stages a write. `check_stock` is given from outside
 * so that a program can make it hang (to cancel the run mid-tool) or answer at once (to let the run complete).
 */
import { Effect, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import * as ScriptedModel from "@tether/testing/ScriptedModel"

export const makeShop = (stock: Effect.Effect<number>) => {
  const placeOrder = Tool.make({
    name: "place_order",
    description: "Places an order; it is saved only if the whole run succeeds.",
    input: Schema.Struct({ item: Schema.String, quantity: Schema.Number }),
    output: Schema.String,
    handler: (order) =>
      Effect.as(AgentRun.stage(StagedWrites.upsert("orders", order.item, order)), `ordered ${order.quantity}`)
  })
  const checkStock = Tool.make({
    name: "check_stock",
    description: "How many of an item are in stock.",
    input: Schema.Struct({ item: Schema.String }),
    output: Schema.Number,
    handler: () => stock
  })
  return Agent.make({
    name: "shop",
    system: "You run a lamp shop.",
    tools: [placeOrder, checkStock],
    tokenBudget: 20_000
  })
}

export const order = { item: "lamp", quantity: 2 } as const
export const input = "Please order two lamps."

/** The model's side, by turn of the run: order, check the stock, answer. */
export const script: ScriptedModel.Script = (request) => {
  const turn = request.messages.filter((message) => message.role === "assistant").length
  if (turn === 0) return [ScriptedModel.toolUse("place_order", order)]
  if (turn === 1) return [ScriptedModel.toolUse("check_stock", { item: order.item })]
  return ScriptedModel.text("Two lamps are ordered, and seven are in stock.", { chunks: 4 })
}
