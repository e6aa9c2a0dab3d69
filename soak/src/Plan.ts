/**
 * What each run of the soak does, and what the fake model answers it. The
 * driver draws a `Plan` per run (what the client does, which tools the model
 * may call); the fake's script finds the run's plan from the user message and
 * draws each reply (a fault, a tool call or a text) from the run's own
 * generator.
 *
 * @example
 * ```ts
 * import * as Plan from "./Plan.js"
 *
 * const plans = new Map<string, Plan.Plan>()
 * const plan = Plan.make(42, 0, 1)
 * plans.set(plan.sessionId, plan)
 * const script = Plan.script(plans) // for FakeAnthropic.make
 * ```
 *
 * @since 0.1.0
 */
import { FakeAnthropic } from "@tether/testing"
import * as Random from "./Random.js"

/**
 * What the client does: read the run to its end, drop the connection, press
 * Stop from a second request, or start on the route whose token budget is
 * too small for the run.
 *
 * @since 0.1.0
 */
export type Action = "complete" | "drop" | "stop" | "budget"

/** The tools of the soak's agent (see `Tools.ts`). @since 0.1.0 */
export type ToolName = "lookup" | "flaky" | "hang" | "ignore_signal" | "shell"

/** @since 0.1.0 */
export interface Plan {
  readonly index: number
  readonly round: number
  readonly sessionId: string
  /** Index of the bearer token the client uses. */
  readonly caller: number
  readonly action: Action
  /** For `drop` and `stop`: how long after the response headers the client acts. */
  readonly actAfterMillis: number
  /** How many turns answer with tool calls before the model answers with text. */
  readonly toolTurns: number
  /** The tools the model may call: `hang` only in runs the client will stop. */
  readonly tools: ReadonlyArray<ToolName>
  /** The run's generator for the model's replies. */
  readonly random: Random.Random
}

/** How many bearer tokens (callers) the server knows. @since 0.1.0 */
export const callerCount = 4

const message = (sessionId: string) => `soak run ${sessionId}: look things up and answer`

/** Draws the plan of run `index` of `round`. @since 0.1.0 */
export const make = (seed: number, index: number, round: number): Plan => {
  const random = Random.make(Random.mix(seed, index))
  const action = random.weighted<Action>([
    [40, "complete"],
    [22, "drop"],
    [22, "stop"],
    [16, "budget"]
  ])
  const canHang = action === "drop" || action === "stop"
  const tools: ReadonlyArray<ToolName> = canHang
    ? ["lookup", "flaky", "hang", "ignore_signal", "shell"]
    : ["lookup", "flaky", "ignore_signal", "shell"]
  return {
    index,
    round,
    sessionId: `r${round}-${String(index).padStart(6, "0")}`,
    caller: random.int(0, callerCount - 1),
    action,
    actAfterMillis: random.int(0, 400),
    toolTurns: action === "budget" ? 0 : random.int(0, 2),
    tools,
    random
  }
}

/** The user message that starts the run of `plan`. @since 0.1.0 */
export const userMessage = (plan: Plan): string => message(plan.sessionId)

type Fault =
  | "none"
  | "rate-limited"
  | "overloaded"
  | "server-error"
  | "reset-before-headers"
  | "reset-mid-stream"
  | "garbage"
  | "truncated-json"
  | "error-event"
  | "slow-first-byte"

const drawFault = (random: Random.Random): Fault =>
  random.weighted<Fault>([
    [50, "none"],
    [7, "rate-limited"],
    [5, "overloaded"],
    [5, "server-error"],
    [4, "reset-before-headers"],
    [5, "reset-mid-stream"],
    [4, "garbage"],
    [3, "truncated-json"],
    [3, "error-event"],
    [14, "slow-first-byte"]
  ])

const words = (random: Random.Random, count: number) =>
  Array.from({ length: count }, () => random.pick(["tide ", "moon ", "sea ", "salt ", "wave ", "shore "]))

/** The run's plan, from the first user message of a request. */
const planOf = (plans: ReadonlyMap<string, Plan>, request: FakeAnthropic.ScriptRequest): Plan | undefined => {
  const first = request.body.messages[0]
  if (first === undefined) return undefined
  const text =
    typeof first.content === "string"
      ? first.content
      : first.content.map((block) => ("text" in block && typeof block.text === "string" ? block.text : "")).join("")
  const match = /^soak run ([A-Za-z0-9_-]+):/.exec(text)
  return match === null ? undefined : plans.get(match[1]!)
}

/** A reply with one of the faults (or none) for a stream of `stream(options)`. */
const withFault = (
  random: Random.Random,
  fault: Fault,
  stream: (options: FakeAnthropic.StreamOptions) => FakeAnthropic.Reply
): FakeAnthropic.Reply => {
  const interval = random.int(1, 8)
  const afterTokens = random.int(0, 3)
  switch (fault) {
    case "none":
      return stream({ interval })
    case "rate-limited":
      return FakeAnthropic.rateLimited(undefined, { retryAfterMs: random.int(5, 40) })
    case "overloaded":
      return FakeAnthropic.overloaded()
    case "server-error":
      return FakeAnthropic.httpError(500)
    case "reset-before-headers":
      return FakeAnthropic.resetConnection(random.int(0, 20))
    case "reset-mid-stream":
      return stream({ interval, fault: { kind: "reset", afterTokens } })
    case "garbage":
      return stream({ interval, fault: { kind: "garbage", afterTokens } })
    case "truncated-json":
      return stream({ interval, fault: { kind: "truncated-json", afterTokens } })
    case "error-event":
      return stream({ interval, fault: { kind: "error-event", afterTokens } })
    case "slow-first-byte":
      return stream({ interval, firstByteDelay: random.int(50, 300) })
  }
}

/**
 * The fake's script: each request is answered from its run's plan. A budget
 * run gets a long text (100 input and 900 output tokens) whose usage crosses the
 * budget (`Server.tightBudget`) mid-stream.
 *
 * @since 0.1.0
 */
export const script =
  (plans: ReadonlyMap<string, Plan>) =>
  (request: FakeAnthropic.ScriptRequest): FakeAnthropic.Reply => {
    const plan = planOf(plans, request)
    if (plan === undefined) return FakeAnthropic.text("I do not know this run.")
    const random = plan.random
    if (plan.action === "budget") {
      return FakeAnthropic.text(words(random, 900), { interval: 1, inputTokens: 100 })
    }
    const turn = request.body.messages.filter((m) => m.role === "assistant").length
    const fault = drawFault(random)
    if (turn < plan.toolTurns) {
      const calls = random.int(1, 2)
      const blocks = Array.from({ length: calls }, (_, i) =>
        FakeAnthropic.toolUseBlock(random.pick(plan.tools), { key: `${plan.sessionId}/${turn}-${i}` })
      )
      return withFault(random, fault, (options) =>
        FakeAnthropic.stream([FakeAnthropic.textBlock("Let me check. "), ...blocks], {
          ...options,
          stopReason: "tool_use"
        })
      )
    }
    return withFault(random, fault, (options) => FakeAnthropic.text(words(random, random.int(3, 12)), options))
  }
