import { describe, expect, it } from "@effect/vitest"
import { LanguageModel, Message } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { ConfigProvider, Effect, Layer, Stream } from "effect"
import { AnthropicModel } from "../src/index.js"
import { retryAfterMillis } from "../src/internal/errors.js"
import { apiKey, collectTurn, modelFor, turnError, unhandledRejectionsDuring, userTurn } from "./helpers.js"

const { Stop, TextDelta, ThinkingDelta, ThinkingEnd, ToolInputDelta, ToolUseEnd, ToolUseStart, Usage } =
  LanguageModel.ModelEvent

describe("AnthropicModel: mapping the stream", () => {
  it.scopedLive("a text and tool_use stream becomes ModelEvents in order, with usage and stop reason", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.stream(
          [
            FakeAnthropic.textBlock("Let me look."),
            FakeAnthropic.toolUseBlock("search", { q: "x" }, { id: "toolu_1", chunkSize: 4 })
          ],
          { stopReason: "tool_use", inputTokens: 42, interval: 5 }
        )
      ])
      const model = yield* modelFor(fake)
      const events = yield* collectTurn(model)
      expect(events).toEqual([
        Usage({ inputTokens: 42, outputTokens: 1 }),
        TextDelta({ text: "Let " }),
        TextDelta({ text: "me " }),
        TextDelta({ text: "look." }),
        ToolUseStart({ id: "toolu_1", name: "search" }),
        ToolInputDelta({ id: "toolu_1", partialJson: '{"q"' }),
        ToolInputDelta({ id: "toolu_1", partialJson: ':"x"' }),
        ToolInputDelta({ id: "toolu_1", partialJson: "}" }),
        ToolUseEnd({ id: "toolu_1", name: "search", inputJson: '{"q":"x"}' }),
        Usage({ inputTokens: 42, outputTokens: 6 }),
        Stop({ reason: "tool_use" })
      ])
    })
  )

  it.scopedLive(
    "thinking deltas map to ThinkingDelta, the signed block to ThinkingEnd; a tool call without input JSON ends with {}",
    () =>
      Effect.gen(function* () {
        const noInput: FakeAnthropic.ToolUseBlock = {
          type: "tool_use",
          id: "toolu_2",
          name: "now",
          input: {},
          chunks: []
        }
        const fake = yield* FakeAnthropic.make([
          FakeAnthropic.stream([FakeAnthropic.thinkingBlock("Hmm."), noInput], {
            stopReason: "tool_use",
            inputTokens: 7
          })
        ])
        const model = yield* modelFor(fake)
        const events = yield* collectTurn(model)
        expect(events).toEqual([
          Usage({ inputTokens: 7, outputTokens: 1 }),
          ThinkingDelta({ text: "Hmm." }),
          ThinkingEnd({ block: { type: "thinking", thinking: "Hmm.", signature: FakeAnthropic.signatureOf("Hmm.") } }),
          ToolUseStart({ id: "toolu_2", name: "now" }),
          ToolUseEnd({ id: "toolu_2", name: "now", inputJson: "{}" }),
          Usage({ inputTokens: 7, outputTokens: 1 }),
          Stop({ reason: "tool_use" })
        ])
      })
  )

  it.scopedLive("the request goes out in the wire format: system, snake_case tool results, tools, max_tokens", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("Done.")])
      const model = yield* modelFor(fake, { model: "claude-test" })
      yield* collectTurn(model, {
        system: "Be brief.",
        maxTokens: 100,
        tools: [{ name: "search", description: "Search", inputSchema: { properties: { q: { type: "string" } } } }],
        messages: [
          Message.user("Find x"),
          {
            role: "assistant",
            content: [
              { type: "text", text: "" },
              { type: "tool_use", id: "toolu_9", name: "search", input: { q: "x" } }
            ]
          },
          {
            role: "user",
            content: [{ type: "tool_result", toolUseId: "toolu_9", content: "not found", isError: true }]
          }
        ]
      })
      const [record] = yield* fake.requests
      expect(record?.issue).toBeUndefined()
      expect(record?.headers.authorization ?? record?.headers["x-api-key"]).toContain(apiKey)
      expect(record?.request).toEqual({
        model: "claude-test",
        max_tokens: 100,
        system: "Be brief.",
        stream: true,
        messages: [
          { role: "user", content: [{ type: "text", text: "Find x" }] },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_9", name: "search", input: { q: "x" } }] },
          {
            role: "user",
            content: [{ type: "tool_result", tool_use_id: "toolu_9", content: "not found", is_error: true }]
          }
        ],
        tools: [
          {
            name: "search",
            description: "Search",
            input_schema: { type: "object", properties: { q: { type: "string" } } }
          }
        ]
      })
    })
  )

  it.scopedLive("layerConfig reads ANTHROPIC_API_KEY, ANTHROPIC_MODEL and ANTHROPIC_BASE_URL", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("Hi")])
      const provider = ConfigProvider.fromMap(
        new Map([
          ["ANTHROPIC_API_KEY", apiKey],
          ["ANTHROPIC_MODEL", "claude-from-config"],
          ["ANTHROPIC_BASE_URL", fake.url]
        ])
      )
      const layer = AnthropicModel.layerConfig.pipe(Layer.provide(Layer.setConfigProvider(provider)))
      const events = yield* Effect.flatMap(LanguageModel.LanguageModel, (model) => collectTurn(model)).pipe(
        Effect.provide(layer)
      )
      expect(events.at(-1)).toEqual(Stop({ reason: "end_turn" }))
      const [record] = yield* fake.requests
      expect(record?.request?.model).toBe("claude-from-config")
    })
  )
})

describe("AnthropicModel: typed errors", () => {
  const statuses = [
    [400, "InvalidRequestError"],
    [401, "AuthenticationError"],
    [403, "PermissionError"],
    [404, "NotFoundError"],
    [413, "InvalidRequestError"],
    [422, "InvalidRequestError"]
  ] as const

  it.scopedLive("non-retryable statuses fail at once with the matching error, without a retry", () =>
    Effect.gen(function* () {
      for (const [status, tag] of statuses) {
        const fake = yield* FakeAnthropic.make([FakeAnthropic.httpError(status), FakeAnthropic.text("never")])
        const model = yield* modelFor(fake, { maxRetries: 3 })
        const error = yield* turnError(model)
        expect({ status, tag: error._tag, errorStatus: error.status }).toEqual({ status, tag, errorStatus: status })
        expect(yield* fake.requestCount).toBe(1)
      }
    })
  )

  it.scopedLive("a 429 carries retryAfterMillis from retry-after; 529 is OverloadedError; 500 ServerError", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.rateLimited(7),
        FakeAnthropic.overloaded({ retryAfterMs: 1500 }),
        FakeAnthropic.httpError(500)
      ])
      const model = yield* modelFor(fake, { maxRetries: 0 })
      const rateLimited = yield* turnError(model)
      const overloaded = yield* turnError(model)
      const server = yield* turnError(model)
      expect(rateLimited).toMatchObject({ _tag: "RateLimitError", status: 429, retryAfterMillis: 7000 })
      expect(overloaded).toMatchObject({ _tag: "OverloadedError", status: 529, retryAfterMillis: 1500 })
      expect(server).toMatchObject({ _tag: "ServerError", status: 500 })
    })
  )

  it("retry-after is read as seconds, as an HTTP date, or from retry-after-ms", () => {
    const now = Date.parse("2026-01-01T00:00:00Z")
    expect(retryAfterMillis(new Headers({ "retry-after": "2" }), now)).toBe(2000)
    expect(retryAfterMillis(new Headers({ "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }), now)).toBe(5000)
    expect(retryAfterMillis(new Headers({ "retry-after": "Wed, 31 Dec 2025 00:00:00 GMT" }), now)).toBe(0)
    expect(retryAfterMillis(new Headers({ "retry-after-ms": "250", "retry-after": "9" }), now)).toBe(250)
    expect(retryAfterMillis(new Headers({ "retry-after": "soon" }), now)).toBeUndefined()
    expect(retryAfterMillis(new Headers(), now)).toBeUndefined()
  })

  // Each fault comes 30 ms after the first token, so the client has consumed events by then.
  const after = (fault: FakeAnthropic.Fault) => FakeAnthropic.text("a b c", { interval: 30, fault })
  const faults: ReadonlyArray<readonly [FakeAnthropic.Reply, string]> = [
    [after({ kind: "garbage", afterTokens: 1 }), "MalformedResponseError"],
    [after({ kind: "truncated-json", afterTokens: 1 }), "MalformedResponseError"],
    [after({ kind: "unexpected-shape", afterTokens: 1 }), "MalformedResponseError"],
    [after({ kind: "end-early", afterTokens: 1 }), "MalformedResponseError"],
    [
      FakeAnthropic.raw("<html>not an event stream</html>", { headers: { "content-type": "text/html" } }),
      "MalformedResponseError"
    ],
    [after({ kind: "reset", afterTokens: 1 }), "ConnectionError"],
    [after({ kind: "error-event", afterTokens: 1 }), "OverloadedError"],
    [after({ kind: "error-event", afterTokens: 1, errorType: "api_error", message: "Internal" }), "ServerError"]
  ]

  it.scopedLive("bad server output and resets are typed errors, never defects or unhandled rejections", () =>
    Effect.gen(function* () {
      const rejections = yield* unhandledRejectionsDuring(
        Effect.gen(function* () {
          for (const [reply, tag] of faults) {
            const fake = yield* FakeAnthropic.make([reply, FakeAnthropic.text("a retry would get this")])
            const model = yield* modelFor(fake, { maxRetries: 3 })
            const seen: Array<LanguageModel.ModelEvent> = []
            const error = yield* Effect.flip(
              LanguageModel.toStream(model, userTurn()).pipe(
                Stream.runForEach((event) => Effect.sync(() => seen.push(event)))
              )
            )
            expect({ fault: reply, tag: error._tag }).toEqual({ fault: reply, tag })
            // Not replayed, even when retryable: the turn had already emitted events (or the error is not retryable).
            expect(yield* fake.requestCount).toBe(1)
          }
        })
      )
      expect(rejections).toEqual([])
    })
  )

  it.scopedLive("an unreachable server, a reset before the response and a request timeout are ConnectionErrors", () =>
    Effect.gen(function* () {
      const resetting = yield* FakeAnthropic.make([FakeAnthropic.resetConnection()])
      const reset = yield* turnError(yield* modelFor(resetting, { maxRetries: 0 }))
      expect(reset._tag).toBe("ConnectionError")

      const closed = yield* Effect.promise(() => FakeAnthropic.start([]))
      yield* Effect.promise(() => closed.close())
      const unreachable = yield* AnthropicModel.make({ apiKey, baseURL: closed.url, maxRetries: 0 })
      expect((yield* turnError(unreachable))._tag).toBe("ConnectionError")

      const fake = yield* FakeAnthropic.make([FakeAnthropic.hang()])
      const impatient = yield* modelFor(fake, { maxRetries: 0, requestTimeout: "200 millis" })
      const error = yield* turnError(impatient)
      expect(error._tag).toBe("ConnectionError")
      expect(error.message).toMatch(/timed out/)
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("1 second"))
      expect(record.closedAt).toBeDefined()
    })
  )
})
