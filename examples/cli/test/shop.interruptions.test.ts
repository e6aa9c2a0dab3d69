/**
 * Copy this file to test your own agent: `Interruptions.check` cancels the run after every event of a
 * reference run (and at random instants) and checks that nothing was left running and no write landed.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { Interruptions, ScriptedModel } from "@tether/testing"
import { shop } from "../src/shop.js"

it.effect("the shop agent stops cleanly wherever it is interrupted", () =>
  Effect.gen(function* () {
    const report = yield* Interruptions.check({
      agent: shop,
      input: "Please order two lamps.",
      script: [
        [ScriptedModel.toolUse("place_order", { item: "lamp", quantity: 2 })],
        [ScriptedModel.toolUse("check_stock", { item: "lamp" })],
        ScriptedModel.text("Your lamps are ordered.", { chunks: 5, delay: "100 millis" })
      ],
      randomInstants: 25
    })
    yield* Effect.log(
      `checked ${report.points} interrupt points: ${report.cancelled} cancelled, ${report.completed} completed`
    )
  })
)
