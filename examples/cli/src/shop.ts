/**
 * The shop agent of the demo: a slow `check_stock` tool and a `place_order` tool that stages the order.
 * The order reaches the database only if the whole run succeeds.
 */
import { Effect, Option, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"

/** Orders are keyed by run, so each demo run can look up its own. */
export const orderId = (runId: string, item: string) => `${runId}/${item.replace(/\W+/g, "-")}`

export const Order = Schema.Struct({ id: Schema.String, item: Schema.String, quantity: Schema.Number })

export const placeOrder = Tool.make({
  name: "place_order",
  description: "Places an order for an item. The order is saved when the conversation turn completes.",
  input: Schema.Struct({ item: Schema.String, quantity: Schema.Number }),
  output: Schema.String,
  handler: ({ item, quantity }) =>
    Effect.gen(function* () {
      const runId = Option.getOrElse(yield* AgentRun.currentRunId, () => "no-run")
      const id = orderId(runId, item)
      yield* AgentRun.stage(StagedWrites.upsert("orders", id, { id, item, quantity }))
      return `Order ${id} staged: ${quantity} x ${item}.`
    })
})

export const checkStock = Tool.make({
  name: "check_stock",
  description: "Checks how many of an item are in stock (slow: it asks the warehouse).",
  input: Schema.Struct({ item: Schema.String }),
  output: Schema.Number,
  handler: ({ item }) =>
    Effect.sleep("3 seconds").pipe(
      Effect.as(item.length * 7),
      Effect.onInterrupt(() => Effect.logInfo(`check_stock(${item}) interrupted`))
    )
})

export const shop = Agent.make({
  name: "shop",
  system: "You run a lamp shop. Place the order first, then check stock before confirming.",
  tools: [placeOrder, checkStock],
  tokenBudget: 20_000
})
