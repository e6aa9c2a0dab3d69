/**
 * Fuzzing the provider with bad Server-Sent Events: whatever the fake server
 * streams in the second turn of a run (random text, a real stream cut short,
 * events dropped or out of order, garbled data, events of the wrong shape),
 * the run that staged a write in its first turn ends `Failed` with a typed
 * `ModelError`: never a defect, never an unhandled rejection, and its write
 * is never committed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Cause, Effect, FastCheck as fc, Layer, Logger, LogLevel, Option, Schema } from "effect"
import { AnthropicModel } from "../src/index.js"
import { apiKey, unhandledRejectionsDuring } from "./helpers.js"

const sse = (event: string, data: string) => `event: ${event}\ndata: ${data}\n\n`

/** A well-formed text turn, event by event (name and JSON data). */
const validEvents = (text: ReadonlyArray<string>): ReadonlyArray<readonly [string, string]> => [
  [
    "message_start",
    JSON.stringify({
      type: "message_start",
      message: {
        id: "msg_fuzz",
        type: "message",
        role: "assistant",
        model: "claude-fake",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 1 }
      }
    })
  ],
  [
    "content_block_start",
    JSON.stringify({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } })
  ],
  ...text.map(
    (chunk) =>
      [
        "content_block_delta",
        JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: chunk } })
      ] as const
  ),
  ["content_block_stop", JSON.stringify({ type: "content_block_stop", index: 0 })],
  [
    "message_delta",
    JSON.stringify({ type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } })
  ],
  ["message_stop", JSON.stringify({ type: "message_stop" })]
]

/** JSON of a protocol event's type with fields of the wrong type or missing. */
const wrongShape = fc.oneof(
  fc.constant('{"type":"message_start"}'),
  fc.constant('{"type":"message_start","message":{"usage":{"input_tokens":"ten"}}}'),
  fc.constant('{"type":"content_block_start","index":"0","content_block":{"type":"tool_use"}}'),
  fc.constant('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":42}}'),
  fc.constant('{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta"}}'),
  fc.constant('{"type":"content_block_stop"}'),
  fc.constant('{"type":"message_delta","delta":"end_turn"}'),
  fc.constant('{"type":"message_delta","delta":{"stop_reason":7}}'),
  fc
    .jsonValue()
    .filter((value) => typeof value !== "object" || value === null)
    .map((value) => JSON.stringify(value)),
  fc
    .dictionary(
      fc.string().filter((key) => key !== "type"),
      fc.jsonValue(),
      { maxKeys: 3 }
    )
    .map((value) => JSON.stringify(value))
)

/** Data that is not JSON at all. */
const garbled = fc.oneof(
  fc.constant("this is not JSON"),
  fc.constant('{"type":"content_block_delta","index":0,"delta":{"ty'),
  fc.string({ minLength: 1, maxLength: 40 }).filter((text) => {
    try {
      JSON.parse(text)
      return false
    } catch {
      return !text.includes("\n")
    }
  })
)

/**
 * A turn that is broken for sure: a valid turn with one fatal defect before its `message_stop` (garbled
 * data, a wrong shape, or the stream cut short), and maybe the other events reordered or dropped first.
 */
const brokenTurn = fc
  .record({
    text: fc.array(fc.string({ maxLength: 8 }), { maxLength: 6 }),
    defect: fc.oneof(
      fc.record({ kind: fc.constant("garbled" as const), data: garbled }),
      fc.record({ kind: fc.constant("wrong-shape" as const), data: wrongShape }),
      fc.record({ kind: fc.constant("cut" as const), data: fc.constant("") })
    ),
    at: fc.nat(),
    cutAt: fc.nat(),
    shuffle: fc.boolean(),
    dropped: fc.array(fc.nat(), { maxLength: 3 })
  })
  .map(({ at, cutAt, defect, dropped, shuffle, text }) => {
    let events = validEvents(text).slice(0, -1) // message_stop goes last, or not at all
    events = events.filter((_, i) => !dropped.includes(i))
    if (shuffle) events = [...events].reverse()
    const stop = sse("message_stop", JSON.stringify({ type: "message_stop" }))
    if (defect.kind === "cut") {
      const body = events.map(([event, data]) => sse(event, data)).join("")
      // Cut anywhere before the end of the stop event: the turn never stops.
      return (body + stop).slice(0, Math.min(cutAt % (body.length + stop.length), body.length + stop.length - 1))
    }
    const position = at % (events.length + 1)
    const broken = [
      ...events.slice(0, position),
      ["content_block_delta", defect.data] as const,
      ...events.slice(position)
    ]
    return broken.map(([event, data]) => sse(event, data)).join("") + stop
  })

/** Random text as a whole body: at best some events, never a `message_stop` that decodes. */
const randomBody = fc
  .oneof(
    fc.string({ maxLength: 200 }),
    fc.fullUnicodeString({ maxLength: 100 }),
    fc
      .array(fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 30 })), { maxLength: 5 })
      .map((events) => events.map(([event, data]) => `event: ${event}\ndata: ${data}\n\n`).join(""))
  )
  .filter((body) => !body.includes("message_stop"))

const modelErrorTags = new Set([
  "AuthenticationError",
  "PermissionError",
  "NotFoundError",
  "InvalidRequestError",
  "RateLimitError",
  "OverloadedError",
  "ServerError",
  "ConnectionError",
  "MalformedResponseError"
])

/** The `ModelError` an `error` event of each type becomes. */
const errorTagOf: Record<string, string> = {
  overloaded_error: "OverloadedError",
  api_error: "ServerError",
  rate_limit_error: "RateLimitError",
  invalid_request_error: "InvalidRequestError",
  weird_error: "ServerError"
}

const stageOrder = Tool.make({
  name: "stage_order",
  description: "Stages an order",
  input: Schema.Struct({ id: Schema.String }),
  output: Schema.String,
  handler: ({ id }) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", id, { id })), `staged ${id}`)
})

const agent = Agent.make({ name: "fuzzed", tools: [stageOrder] })

/** Runs the agent: a good first turn stages a write, the second turn streams `body`. */
const runAgainst = (fake: FakeAnthropic.Service, next: { body: string }, body: string) =>
  Effect.gen(function* () {
    next.body = body
    const model = AnthropicModel.layer({ apiKey, baseURL: fake.url, maxRetries: 0 })
    const context = yield* Layer.build(Layer.merge(model, StagedWrites.layerMemory))
    const run = yield* AgentRun.start(agent, "Order something").pipe(Effect.provide(context))
    const outcome = yield* run.outcome.pipe(Effect.timeout("5 seconds"))
    const committed = yield* Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot).pipe(
      Effect.provide(context)
    )
    return { outcome, committed }
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

const expectTypedFailure = (
  result: Effect.Effect.Success<ReturnType<typeof runAgainst>>,
  body: string,
  expectedTag?: string
) => {
  const { committed, outcome } = result
  expect(outcome._tag, `body ${JSON.stringify(body)}`).toBe("Failed")
  if (outcome._tag !== "Failed") return
  expect(Cause.isDie(outcome.cause), Cause.pretty(outcome.cause)).toBe(false)
  const error = Cause.failureOption(outcome.cause)
  expect(Option.isSome(error) && modelErrorTags.has(error.value._tag), Cause.pretty(outcome.cause)).toBe(true)
  if (expectedTag !== undefined) expect(Option.map(error, (e) => e._tag)).toEqual(Option.some(expectedTag))
  expect(outcome.writesRolledBack).toBe(1)
  expect(committed.size).toBe(0)
}

const scriptFor =
  (next: { body: string }): FakeAnthropic.Script =>
  (request) =>
    request.body.messages.length === 1
      ? FakeAnthropic.toolUse("stage_order", { id: `o-${request.index}` })
      : FakeAnthropic.raw(next.body, { headers: { "content-type": "text/event-stream" } })

const property = (arbitrary: fc.Arbitrary<string>, numRuns: number, expectedTag?: (body: string) => string) =>
  Effect.gen(function* () {
    const next = { body: "" }
    const fake = yield* FakeAnthropic.make(scriptFor(next))
    const rejections = yield* unhandledRejectionsDuring(
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(arbitrary, async (body) => {
            const result = await Effect.runPromise(runAgainst(fake, next, body))
            expectTypedFailure(result, body, expectedTag?.(body))
          }),
          { numRuns, seed: 20250101 }
        )
      )
    )
    expect(rejections).toEqual([])
    expect(yield* fake.inFlight).toBe(0)
  })

describe("AnthropicModel under bad SSE", () => {
  it.scopedLive("a turn broken before message_stop fails the run with a typed ModelError and commits nothing", () =>
    property(brokenTurn, 120)
  )

  it.scopedLive("a random body in place of the stream fails the run with a typed ModelError and commits nothing", () =>
    property(randomBody, 80)
  )

  it.scopedLive("an error event in the stream fails the run with the ModelError its type names", () =>
    property(
      fc
        .record({
          type: fc.constantFrom(
            "overloaded_error",
            "api_error",
            "rate_limit_error",
            "invalid_request_error",
            "weird_error"
          ),
          prefix: fc.nat({ max: 3 })
        })
        .map(
          ({ prefix, type }) =>
            validEvents(["Hel", "lo"])
              .slice(0, prefix)
              .map(([event, data]) => sse(event, data))
              .join("") + sse("error", JSON.stringify({ type: "error", error: { type, message: `fuzz ${type}` } }))
        ),
      20,
      (body) => errorTagOf[/"type":"(\w+_error)"/.exec(body)?.[1] ?? ""] ?? "?"
    )
  )
})

/** A well-formed turn whose events are all valid JSON of the right shape, but in an order the API never sends. */
const completedOrFailed = (body: string) =>
  Effect.gen(function* () {
    const next = { body: "" }
    const fake = yield* FakeAnthropic.make(scriptFor(next))
    return yield* runAgainst(fake, next, body)
  })

// The mapping checks the protocol's order as well as each event's shape: `message_start` first, blocks opened
// before their deltas, nothing after `message_stop`. (Found by this fuzzing: a wrong order was once accepted,
// and the run completed with the text in any order and committed its writes.)
describe("AnthropicModel under SSE events in the wrong order", () => {
  it.live("a content event after message_stop fails the run with MalformedResponseError", () =>
    Effect.gen(function* () {
      const afterStop = sse(
        "content_block_delta",
        JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " after stop" } })
      )
      const body =
        validEvents(["Hel", "lo"])
          .map(([event, data]) => sse(event, data))
          .join("") + afterStop
      const result = yield* completedOrFailed(body).pipe(Effect.scoped)
      expectTypedFailure(result, body, "MalformedResponseError")
    })
  )

  it.live("a turn whose events arrive in reverse order fails with MalformedResponseError", () =>
    Effect.gen(function* () {
      const body = [...validEvents(["Hel", "lo"])]
        .reverse()
        .map(([event, data]) => sse(event, data))
        .join("")
      const result = yield* completedOrFailed(body).pipe(Effect.scoped)
      expectTypedFailure(result, body, "MalformedResponseError")
    })
  )
})
