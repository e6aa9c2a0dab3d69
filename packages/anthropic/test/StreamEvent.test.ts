import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import { LanguageModel } from "@tether/core"
import { decode, initialState, outOfOrder, toModelEvents } from "../src/internal/events.js"

// The protocol as a Schema: the reference the hand-written decoder (it runs once per streamed token) is held to.
const NullableNumber = Schema.optional(Schema.NullOr(Schema.Number))

const OtherType = (known: ReadonlyArray<string>) =>
  Schema.transform(
    Schema.Struct({ type: Schema.String.pipe(Schema.filter((type) => !known.includes(type))) }),
    Schema.Struct({ type: Schema.Literal("ignored"), original: Schema.String }),
    {
      strict: true,
      decode: ({ type }) => ({ type: "ignored" as const, original: type }),
      encode: ({ original }) => ({ type: original })
    }
  )

const Usage = Schema.Struct({
  input_tokens: NullableNumber,
  output_tokens: NullableNumber,
  cache_creation_input_tokens: NullableNumber,
  cache_read_input_tokens: NullableNumber
})

const Reference = Schema.Union(
  Schema.Struct({ type: Schema.Literal("message_start"), message: Schema.Struct({ usage: Usage }) }),
  Schema.Struct({
    type: Schema.Literal("content_block_start"),
    index: Schema.Number,
    content_block: Schema.Union(
      Schema.Struct({ type: Schema.Literal("tool_use"), id: Schema.String, name: Schema.String }),
      Schema.Struct({ type: Schema.Literal("thinking"), thinking: Schema.String, signature: Schema.String }),
      Schema.Struct({ type: Schema.Literal("redacted_thinking"), data: Schema.String }),
      OtherType(["tool_use", "thinking", "redacted_thinking"])
    )
  }),
  Schema.Struct({
    type: Schema.Literal("content_block_delta"),
    index: Schema.Number,
    delta: Schema.Union(
      Schema.Struct({ type: Schema.Literal("text_delta"), text: Schema.String }),
      Schema.Struct({ type: Schema.Literal("thinking_delta"), thinking: Schema.String }),
      Schema.Struct({ type: Schema.Literal("input_json_delta"), partial_json: Schema.String }),
      Schema.Struct({ type: Schema.Literal("signature_delta"), signature: Schema.String }),
      OtherType(["text_delta", "thinking_delta", "input_json_delta", "signature_delta"])
    )
  }),
  Schema.Struct({ type: Schema.Literal("content_block_stop"), index: Schema.Number }),
  Schema.Struct({
    type: Schema.Literal("message_delta"),
    delta: Schema.Struct({ stop_reason: Schema.optional(Schema.NullOr(Schema.String)) }),
    usage: Schema.optional(Schema.NullOr(Usage))
  }),
  Schema.Struct({ type: Schema.Literal("message_stop") }),
  OtherType([
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop"
  ])
)
const reference = Schema.decodeUnknownEither(Reference)

/** Every path to a value inside `value`. */
const paths = (value: unknown, prefix: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? Object.entries(value).flatMap(([key, inner]) => [[...prefix, key], ...paths(inner, [...prefix, key])])
    : []

const replaceAt = (value: unknown, path: ReadonlyArray<string>, replacement: unknown): unknown => {
  if (path.length === 0) return replacement
  const record = value as Record<string, unknown>
  return { ...record, [path[0]!]: replaceAt(record[path[0]!], path.slice(1), replacement) }
}

const wireEvent = Arbitrary.make(Schema.encodedSchema(Reference))
const common = [
  "message_start",
  "content_block_delta",
  "text_delta",
  "tool_use",
  "thinking",
  "signature_delta",
  "message_stop"
] as const
const payload = FastCheck.oneof(
  wireEvent,
  // a well-formed event with one value somewhere inside it replaced
  FastCheck.tuple(wireEvent, FastCheck.jsonValue({ maxDepth: 2 }), FastCheck.nat()).map(([event, value, n]) => {
    const all = paths(event)
    return all.length === 0 ? value : replaceAt(event, all[n % all.length]!, value)
  }),
  FastCheck.jsonValue({ maxDepth: 3 }),
  FastCheck.record({ type: FastCheck.constantFrom(...common), index: FastCheck.jsonValue({ maxDepth: 1 }) })
)

describe("the stream event decoder", () => {
  it("refuses an event whose type is an object without a usable toString, with a typed error (it used to throw)", () => {
    const decoded = decode({ type: { toString: false } })
    expect(Either.isLeft(decoded) && decoded.left._tag).toBe("MalformedResponseError")
  })

  it("accepts what the protocol's Schema accepts, and reads it the same; it refuses the rest with a typed error", () => {
    FastCheck.assert(
      FastCheck.property(payload, (data) => {
        const decoded = decode(data)
        // Effect's own parser throws on some payloads (a union's tag without a usable toString): those are refused.
        let expected: ReturnType<typeof reference>
        try {
          expected = reference(data)
        } catch (defect) {
          expected = Either.left(defect as never)
        }
        expect(Either.isRight(decoded)).toBe(Either.isRight(expected))
        if (Either.isRight(decoded) && Either.isRight(expected)) expect(decoded.right).toEqual(expected.right)
        if (Either.isLeft(decoded)) expect(decoded.left._tag).toBe("MalformedResponseError")
      }),
      { numRuns: 3000 }
    )
  })

  it("a thinking block becomes ThinkingEnd once signed; unsigned it is left out; a redacted one goes as it came", () => {
    const state = initialState()
    const events = [
      { type: "message_start", message: { usage: { input_tokens: 5 } } },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "", signature: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "Hmm" } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "sig-1" } },
      { type: "content_block_stop", index: 0 },
      { type: "content_block_start", index: 1, content_block: { type: "thinking", thinking: "", signature: "" } },
      { type: "content_block_delta", index: 1, delta: { type: "thinking_delta", thinking: "cut short" } },
      { type: "content_block_stop", index: 1 },
      { type: "content_block_start", index: 2, content_block: { type: "redacted_thinking", data: "c2VjcmV0" } },
      { type: "content_block_stop", index: 2 }
    ].flatMap((data) => toModelEvents(state, Either.getOrThrow(decode(data))))
    const { ThinkingDelta, ThinkingEnd, Usage } = LanguageModel.ModelEvent
    expect(events).toEqual([
      Usage({ inputTokens: 5, outputTokens: 0 }),
      ThinkingDelta({ text: "Hmm" }),
      ThinkingEnd({ block: { type: "thinking", thinking: "Hmm", signature: "sig-1" } }),
      ThinkingDelta({ text: "cut short" }),
      ThinkingEnd({ block: { type: "redacted_thinking", data: "c2VjcmV0" } })
    ])
  })

  it("open content blocks are tracked at any index: small, large, negative or fractional", () => {
    const state = initialState()
    const step = (data: object) => {
      const event = Either.getOrThrow(decode(data))
      const problem = outOfOrder(state, event)
      if (problem === undefined) toModelEvents(state, event)
      return problem?.message
    }
    const text = { type: "text", text: "" }
    expect(step({ type: "message_start", message: { usage: {} } })).toBeUndefined()
    for (const index of [0, 30, 31, 1000, -1, 2.5]) {
      expect(step({ type: "content_block_delta", index, delta: { type: "text_delta", text: "x" } })).toBe(
        `unexpected content_block_delta of content block ${index}, never started`
      )
      expect(step({ type: "content_block_start", index, content_block: text })).toBeUndefined()
      expect(step({ type: "content_block_start", index, content_block: text })).toBe(
        `unexpected content block ${index} started twice`
      )
      expect(step({ type: "content_block_delta", index, delta: { type: "text_delta", text: "x" } })).toBeUndefined()
    }
    for (const index of [0, 30, 31, 1000, -1, 2.5]) {
      expect(step({ type: "content_block_stop", index })).toBeUndefined()
      expect(step({ type: "content_block_stop", index })).toBe(
        `unexpected content_block_stop of content block ${index}, never started`
      )
    }
  })

  it("a part of the input usage that cannot be a count spoils the sum: no negative part lowers it", () => {
    const usageOf = (usage: object) =>
      toModelEvents(initialState(), Either.getOrThrow(decode({ type: "message_start", message: { usage } })))
    const { Usage } = LanguageModel.ModelEvent
    expect(usageOf({ input_tokens: 100, cache_read_input_tokens: 20, output_tokens: 1 })).toEqual([
      Usage({ inputTokens: 120, outputTokens: 1 })
    ])
    expect(usageOf({ input_tokens: 100, cache_read_input_tokens: -50 })).toEqual([
      Usage({ inputTokens: Number.NaN, outputTokens: 0 })
    ])
    expect(usageOf({ input_tokens: -999_999_999, cache_creation_input_tokens: 2_000_000_000 })).toEqual([
      Usage({ inputTokens: Number.NaN, outputTokens: 0 })
    ])
  })
})
