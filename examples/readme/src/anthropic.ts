import { Console, Effect, Fiber, Layer, Schema, Stream } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, CancelReason, StagedWrites, Tool } from "@tether/core"

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
  // Staged: the order lands only if the whole run succeeds.
  handler: (order) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", order.item, order)), "ordered")
})

const shop = Agent.make({ name: "shop", tools: [checkStock, placeOrder], tokenBudget: 50_000 })

// The real model: reads ANTHROPIC_API_KEY (and ANTHROPIC_MODEL, ANTHROPIC_BASE_URL).
const model = AnthropicModel.layerConfig

const program = Effect.gen(function* () {
  const run = yield* AgentRun.start(shop, "Order two lamps")
  const log = Stream.runForEach(run.events, (event) =>
    event._tag === "TokensUsed"
      ? Effect.void
      : Console.log("tool" in event ? `${event._tag} ${event.tool}` : event._tag)
  )
  const printer = yield* Effect.fork(log)
  // Press Stop while the answer streams, after the order was staged.
  const staged = Stream.dropUntil(run.events, (event) => event._tag === "WriteStaged")
  yield* Stream.runHead(Stream.filter(staged, (event) => event._tag === "TextDelta"))
  const outcome = yield* run.cancel(new CancelReason.UserAbort())
  yield* Fiber.join(printer)
  const committed = yield* Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)
  if (outcome._tag === "Cancelled") console.log(`${outcome.reason._tag}: ${outcome.writesRolledBack} write rolled back`)
  if (outcome._tag === "Failed") console.log(outcome.error) // what failed, and what to do about it
  console.log(`orders committed: ${committed.get("orders")?.size ?? 0}`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(model, StagedWrites.layerMemory)),
  Effect.catchTag("MissingApiKeyError", (error) => Console.error(error.message)),
  Effect.runPromise
)
