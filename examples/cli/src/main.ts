/**
 * `pnpm --filter @tether/example-cli start [--stop-after 2s]`: runs the shop agent on one message. Press Ctrl-C
 * while it works (or pass --stop-after) and it prints what was cancelled and rolled back, then shows that the
 * order never reached the database. Uses the real Anthropic API when ANTHROPIC_API_KEY is set, else the
 * offline fake Anthropic server; SQLite in .data/cli.db.
 */
import { Duration, Effect, Fiber, Layer, Logger, LogLevel, Option, Stream } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { AgentRun, CancelReason } from "@tether/core"
import type { TokenBudget } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import { FakeAnthropic } from "@tether/testing"
import { orderId, shop } from "./shop.js"

/** `--stop-after 1500` (milliseconds) or `--stop-after "2 seconds"`. */
const stopAfter = (() => {
  const at = process.argv.indexOf("--stop-after")
  if (at === -1) return undefined
  const value = process.argv[at + 1] ?? ""
  const duration = Duration.decodeUnknown(/^\d+$/.test(value) ? Number(value) : value)
  if (Option.isNone(duration)) {
    console.error(`--stop-after takes milliseconds or a duration such as "2 seconds", not "${value}"`)
    process.exit(2)
  }
  return duration.value
})()

/** The offline script: place the order, check stock (slow), then answer in slow words. */
const offline: FakeAnthropic.Script = (request) => {
  const turn = request.body.messages.filter((m) => m.role === "assistant").length
  if (turn === 0) return FakeAnthropic.toolUse("place_order", { item: "lamp", quantity: 2 }, { interval: 30 })
  if (turn === 1) return FakeAnthropic.toolUse("check_stock", { item: "lamp" }, { interval: 30 })
  return FakeAnthropic.text("Your order of two lamps is placed and they are in stock. Thank you!", { interval: 150 })
}

const model = process.env["ANTHROPIC_API_KEY"]
  ? AnthropicModel.layerConfig
  : Layer.unwrapScoped(
      Effect.map(FakeAnthropic.make(offline), (fake) => AnthropicModel.layer({ apiKey: "offline", baseURL: fake.url }))
    )

/** A run's tokens, with what the model reported and what was estimated. */
const tokens = ({ estimated, reportedInput, reportedOutput, used }: TokenBudget.Tally) =>
  `${used} tokens (${reportedInput} input and ${reportedOutput} output as the model reported them` +
  `${estimated > 0 ? `, ${estimated} estimated from what it streamed` : ""})`

/** Why the run stopped, in the words of this demo. */
const whyCancelled = (reason: CancelReason.CancelReason) => {
  switch (reason._tag) {
    case "UserAbort":
      return "you pressed Ctrl-C"
    case "Timeout":
      return `timed out after ${Duration.format(Duration.millis(reason.millis))} (--stop-after)`
    default:
      return CancelReason.describe(reason)
  }
}

// Under pnpm one Ctrl-C reaches this process more than once (from the terminal, then passed on by pnpm): without a
// listener, the second one would end the process while it rolls back and reads the database. The run is cancelled
// on the first (below); the others are ignored, and the demo ends by itself right after.
const ignoreRepeatedCtrlC = () => {}
process.on("SIGINT", ignoreRepeatedCtrlC)

/** Completes on the first Ctrl-C; the listener is removed when the wait ends. */
const ctrlC = Effect.async<void>((resume) => {
  const onSigint = () => resume(Effect.void)
  process.once("SIGINT", onSigint)
  return Effect.sync(() => process.off("SIGINT", onSigint))
})

const program = Effect.gen(function* () {
  console.log(`model: ${process.env["ANTHROPIC_API_KEY"] ? "Anthropic API" : "offline fake Anthropic server"}`)
  console.log("Press Ctrl-C at any time to stop the run.\n")
  // --stop-after is the run's own deadline: the run cancels itself with `Timeout`; Ctrl-C cancels it with `UserAbort`.
  const run = yield* AgentRun.start(shop, "Please order two lamps.", { timeout: stopAfter })
  const printer = yield* run.events.pipe(
    Stream.runForEach((event) =>
      Effect.sync(() => {
        switch (event._tag) {
          case "TextDelta":
            return process.stdout.write(event.text)
          case "ToolStarted":
            return console.log(`\n[tool] ${event.tool} ${JSON.stringify(event.input)}`)
          case "ToolSucceeded":
            return console.log(`[tool] ${event.tool} -> ${JSON.stringify(event.output)}`)
          case "ToolInterrupted":
            return console.log(`[tool] ${event.tool} interrupted`)
          case "WriteStaged":
            return console.log(`[write] staged: ${event.description}`)
          case "Committed":
            return console.log(`\n[write] committed ${event.count} write(s)`)
          case "RolledBack":
            return console.log(`\n[write] rolled back ${event.count} write(s) (${event.reason})`)
          case "RunCancelled":
            return console.log(`[run] cancelled: ${whyCancelled(event.reason)}; ${tokens(event.tally)}`)
          case "RunCompleted":
            return console.log(`[run] completed; ${tokens(event.tally)}`)
          default:
            return undefined
        }
      })
    ),
    Effect.fork
  )
  const outcome = yield* Effect.raceFirst(run.outcome, Effect.zipRight(ctrlC, run.cancel(new CancelReason.UserAbort())))
  yield* Fiber.join(printer)
  const order = yield* SqlStagedWrites.read("orders", orderId(run.id, "lamp"))
  console.log(`\noutcome: ${outcome._tag}; order in the database: ${Option.isSome(order) ? "yes" : "no"}`)
})

program
  .pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(
        model,
        SqlStagedWrites.layerSqlite({ filename: ".data/cli.db" }),
        Logger.minimumLogLevel(LogLevel.Warning)
      )
    ),
    Effect.runPromise
  )
  .then(
    () => process.exit(0),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
