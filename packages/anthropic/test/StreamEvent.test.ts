import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import { decode } from "../src/internal/events.js"

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
      OtherType(["tool_use"])
    )
  }),
  Schema.Struct({
    type: Schema.Literal("content_block_delta"),
    index: Schema.Number,
    delta: Schema.Union(
      Schema.Struct({ type: Schema.Literal("text_delta"), text: Schema.String }),
      Schema.Struct({ type: Schema.Literal("thinking_delta"), thinking: Schema.String }),
      Schema.Struct({ type: Schema.Literal("input_json_delta"), partial_json: Schema.String }),
      OtherType(["text_delta", "thinking_delta", "input_json_delta"])
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
const common = ["message_start", "content_block_delta", "text_delta", "tool_use", "message_stop"] as const
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
})
