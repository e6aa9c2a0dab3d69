import { Either, ParseResult, Schema } from "effect"
import { thinkingIssue } from "./fakeAnthropicThinking.js"

const NonEmptyText = Schema.String.pipe(
  Schema.filter((text) => text.trim().length > 0, { message: () => "text content blocks must be non-empty" })
)

const TextBlock = Schema.Struct({ type: Schema.Literal("text"), text: NonEmptyText })
const ToolUseBlock = Schema.Struct({
  type: Schema.Literal("tool_use"),
  id: Schema.String,
  name: Schema.String,
  input: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})
const ToolResultBlock = Schema.Struct({
  type: Schema.Literal("tool_result"),
  tool_use_id: Schema.String,
  content: Schema.optional(Schema.Union(Schema.String, Schema.Array(Schema.Unknown))),
  is_error: Schema.optional(Schema.Boolean)
})
const ThinkingBlock = Schema.Struct({
  type: Schema.Literal("thinking"),
  thinking: Schema.String,
  signature: Schema.String
})
const RedactedThinkingBlock = Schema.Struct({ type: Schema.Literal("redacted_thinking"), data: Schema.String })
const OtherBlock = Schema.Struct({ type: Schema.Literal("image", "document", "search_result") })

/** The request body of `POST /v1/messages`, as far as the fake checks it. */
export const WireRequest = Schema.Struct({
  model: Schema.String,
  max_tokens: Schema.Int.pipe(Schema.positive()),
  messages: Schema.Array(
    Schema.Struct({
      role: Schema.Literal("user", "assistant"),
      content: Schema.Union(
        NonEmptyText,
        Schema.Array(
          Schema.Union(TextBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock, OtherBlock)
        )
      )
    })
  ),
  system: Schema.optional(Schema.Union(Schema.String, Schema.Array(Schema.Unknown))),
  tools: Schema.optional(
    Schema.Array(
      Schema.Struct({
        name: Schema.String,
        description: Schema.optional(Schema.String),
        input_schema: Schema.Struct({ type: Schema.Literal("object") }, { key: Schema.String, value: Schema.Unknown })
      })
    )
  ),
  stream: Schema.optional(Schema.Boolean),
  thinking: Schema.optional(
    Schema.Union(
      Schema.Struct({
        type: Schema.Literal("enabled"),
        budget_tokens: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1024))
      }),
      Schema.Struct({ type: Schema.Literal("disabled") })
    )
  )
})
export type WireRequest = typeof WireRequest.Type

const decodeWireRequest = Schema.decodeUnknownEither(WireRequest, { onExcessProperty: "preserve" })

/** Decodes a request body; `Left` holds an API-style message naming the first bad field. */
export const parseWireRequest = (text: string): Either.Either<WireRequest, string> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Either.left("request body is not valid JSON")
  }
  return Either.mapLeft(decodeWireRequest(json), (error) => {
    // A union reports one issue per member: the deepest one names the field that is wrong.
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error).sort((a, b) => b.path.length - a.path.length)
    return issue === undefined ? "invalid request" : `${issue.path.join(".")}: ${issue.message}`
  }).pipe(
    Either.flatMap((request) => {
      const issue = thinkingIssue(request)
      return issue === undefined ? Either.right(request) : Either.left(issue)
    })
  )
}
