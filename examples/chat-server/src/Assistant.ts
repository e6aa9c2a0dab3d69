/**
 * The demo's agents and tools, chosen to show what a Stop does:
 *
 * - `research`: slow (seconds); it searches three sources as subtasks of the run;
 * - `ask_expert`: runs a second agent inside the tool, a sub-agent that shares
 *   the run's token budget and stops with it;
 * - `place_order`: stages an order. It is committed only when the whole answer
 *   completes; after a Stop (or a closed tab) it never appears.
 *
 * @example
 * ```ts
 * import * as Assistant from "./Assistant.js"
 *
 * const agent = Assistant.make({ researchStepMillis: 1200 })
 * ```
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import { Duration, Effect, Option, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Subtask, Tool } from "@tether/core"
import { Auth } from "@tether/http"

/** The system prompt of the sub-agent; the offline model recognises it by its first words. @since 0.1.0 */
export const expertSystem =
  "You are a product expert asked for a second opinion by another assistant. Answer in two or three short sentences."

/** @since 0.1.0 */
export const assistantSystem = [
  "You are a shopping research assistant in a demo of cancellable agent runs.",
  "For a product question: first call `research`, then `ask_expert` for a second opinion,",
  "and when the user wants to buy something call `place_order` (quantity 1 unless told otherwise).",
  "Then answer in a few short paragraphs. Orders are only placed if your whole answer completes."
].join(" ")

/** A committed order, as `GET /orders` lists it to its owner. @since 0.1.0 */
export const Order = Schema.Struct({
  id: Schema.String,
  /** The caller whose run placed it: `GET /orders` lists a caller's own orders only. */
  owner: Schema.String,
  item: Schema.String,
  quantity: Schema.Number,
  runId: Schema.String,
  stagedAt: Schema.String
})
/** @since 0.1.0 */
export type Order = typeof Order.Type

/** The table orders are written to. @since 0.1.0 */
export const ordersTable = "orders"

/** @since 0.1.0 */
export interface Options {
  /** How long one search step of `research` takes. Default 1200 ms (the whole tool: about 4 s). */
  readonly researchStepMillis?: number | undefined
  /** Token ceiling of a whole run tree (assistant and expert together). Default 60 000. */
  readonly tokenBudget?: number | undefined
}

const sources = ["reviews", "prices", "forums"] as const

/** The slow tool: three searches run as subtasks of the run; it waits for all of them. @since 0.1.0 */
export const research = (stepMillis: number) =>
  Tool.make({
    name: "research",
    description: "Searches reviews, prices and forums about a topic and summarises them. Takes a few seconds.",
    input: Schema.Struct({ topic: Schema.String }),
    output: Schema.String,
    handler: ({ topic }) =>
      Effect.gen(function* () {
        const searches = yield* Effect.forEach(sources, (source, i) =>
          Subtask.spawn(
            `search ${source}`,
            Effect.sleep(Duration.millis(stepMillis * (i + 1))).pipe(
              Effect.as(`${source}: ${3 + i} results about "${topic.slice(0, 60)}"`)
            )
          )
        )
        const findings = yield* Effect.forEach(searches, Subtask.join)
        return findings.join("; ")
      })
  })

const expert = Agent.make({ name: "expert", system: expertSystem, maxTurns: 1, maxTokens: 400 })

/** The sub-agent tool: the expert runs inside the tool, on the run's budget. @since 0.1.0 */
export const askExpert = Tool.make({
  name: "ask_expert",
  description: "Asks a product expert (a second agent) for a short second opinion.",
  input: Schema.Struct({ question: Schema.String }),
  output: Schema.String,
  handler: ({ question }) => Effect.map(AgentRun.run(expert, question), (result) => result.text)
})

/**
 * Stages an order of the caller the run acts for (`Auth.CurrentCaller`, which the session routes give every run, in
 * one process and in cluster mode alike): it is written only if the run completes.
 *
 * @since 0.1.0
 */
export const placeOrder = Tool.make({
  name: "place_order",
  description:
    "Orders an item for the user. The order is only placed if this whole answer completes; a Stop rolls it back.",
  input: Schema.Struct({
    item: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    quantity: Schema.Int.pipe(Schema.between(1, 10))
  }),
  output: Schema.String,
  handler: ({ item, quantity }) =>
    Effect.gen(function* () {
      const runId = Option.getOrElse(yield* AgentRun.currentRunId, () => "unknown")
      const id = `ord_${randomUUID().slice(0, 8)}`
      const owner = yield* Auth.CurrentCaller
      const order: Order = { id, owner, item, quantity, runId, stagedAt: new Date().toISOString() }
      yield* AgentRun.stage(StagedWrites.upsert(ordersTable, id, order))
      return `Order ${id} (${quantity} x ${item}) is staged; it is placed when this answer completes.`
    })
})

/**
 * The assistant with its three tools, its orders placed for the caller of the session routes.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}) =>
  Agent.make({
    name: "assistant",
    system: assistantSystem,
    tools: [research(options.researchStepMillis ?? 1200), askExpert, placeOrder],
    maxTurns: 8,
    maxTokens: 1024,
    tokenBudget: options.tokenBudget ?? 60_000
  })
