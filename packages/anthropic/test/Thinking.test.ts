/**
 * Extended thinking over the real SDK against the fake API, which checks what the real one checks: each thinking
 * block sent back carries its own signature, and with thinking on, a tool loop continues only with the thinking of
 * the assistant message that asked for the tools, first in that message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, CancelReason, Message, Tool } from "@tether/core"
import type { LanguageModel } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Deferred, Effect, Schema } from "effect"
import { AnthropicModel } from "../src/index.js"
import { apiKey, collectTurn, modelFor, turnError, userTurn } from "./helpers.js"

const lookup = (started?: Deferred.Deferred<void>) =>
  Tool.make({
    name: "lookup",
    description: "Looks a word up",
    input: Schema.Struct({ word: Schema.String }),
    output: Schema.String,
    handler: ({ word }) =>
      started === undefined
        ? Effect.succeed(`${word}: a small bird`)
        : Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
  })

const thinkThenLookUp = FakeAnthropic.stream(
  [
    FakeAnthropic.thinkingBlock(["The user wants ", "a definition."]),
    FakeAnthropic.textBlock("Let me check."),
    FakeAnthropic.toolUseBlock("lookup", { word: "wren" })
  ],
  { stopReason: "tool_use" }
)

const modelLayer = (fake: FakeAnthropic.Service) =>
  AnthropicModel.layer({ apiKey, baseURL: fake.url, thinking: { budgetTokens: 2048 } })

describe("AnthropicModel: extended thinking", () => {
  it.scopedLive("a tool loop sends the signed thinking back first; the transcript keeps it", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([thinkThenLookUp, FakeAnthropic.text("A wren is a small bird.")])
      const agent = Agent.make({ name: "a", tools: [lookup()], maxTokens: 4096 })
      const result = yield* AgentRun.run(agent, "What is a wren?").pipe(Effect.provide(modelLayer(fake)))
      expect(result.text).toBe("A wren is a small bird.")

      const thinking = "The user wants a definition."
      const block = { type: "thinking", thinking, signature: FakeAnthropic.signatureOf(thinking) }
      expect(result.transcript[1]?.content.map((b) => b.type)).toEqual(["thinking", "text", "tool_use"])
      expect(result.transcript[1]?.content[0]).toEqual(block)
      const [first, second] = yield* fake.requests
      expect(first?.request?.thinking).toEqual({ type: "enabled", budget_tokens: 2048 })
      expect(second?.status).toBe(200)
      expect(second?.request?.messages[1]?.content).toEqual([
        block,
        { type: "text", text: "Let me check." },
        expect.objectContaining({ type: "tool_use", name: "lookup" })
      ])
    })
  )

  it.scopedLive("the fake refuses what the API refuses: a tool loop without the thinking, or a forged signature", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("never"), FakeAnthropic.text("never")])
      const model = yield* modelFor(fake, { thinking: { budgetTokens: 1024 } })
      const toolUse: Message.ToolUseBlock = { type: "tool_use", id: "toolu_1", name: "lookup", input: { word: "wren" } }
      const loop = (asked: ReadonlyArray<Message.ContentBlock>): LanguageModel.TurnRequest => ({
        ...userTurn(),
        maxTokens: 2048,
        messages: [
          Message.user("What is a wren?"),
          { role: "assistant", content: asked },
          { role: "user", content: [{ type: "tool_result", toolUseId: "toolu_1", content: "a bird", isError: false }] }
        ]
      })
      const withoutThinking = yield* turnError(model, loop([toolUse]))
      expect(withoutThinking._tag).toBe("InvalidRequestError")
      expect(withoutThinking.message).toMatch(/Expected `thinking` or `redacted_thinking`, but found `tool_use`/)
      const forged = yield* turnError(
        model,
        loop([{ type: "thinking", thinking: "I changed this.", signature: FakeAnthropic.signatureOf("Hmm.") }, toolUse])
      )
      expect(forged.message).toMatch(/Invalid `signature`/)
    })
  )

  it.scopedLive(
    "the budget is capped below a turn's maxTokens; a turn with no room to think fails, sending nothing",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropic.make([FakeAnthropic.text("Thought briefly.")])
        const wide = yield* modelFor(fake, { thinking: { budgetTokens: 8000 } })
        yield* collectTurn(wide, { ...userTurn(), maxTokens: 2048 })
        expect((yield* fake.requests)[0]?.request?.thinking).toEqual({ type: "enabled", budget_tokens: 2047 })

        const error = yield* turnError(wide, { ...userTurn(), maxTokens: 1024 })
        expect(error).toMatchObject({ _tag: "InvalidRequestError" })
        expect(error.message).toContain("maxTokens (1024) leaves no room to think")
        const tooSmall = yield* modelFor(fake, { thinking: { budgetTokens: 100 } })
        expect((yield* turnError(tooSmall, { ...userTurn(), maxTokens: 4096 })).message).toContain("at least 1024")
        expect(yield* fake.requestCount).toBe(1)
      })
  )

  it.scopedLive("cancelled while its tool runs, a run's transcript keeps the signed thinking before the tool use", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([thinkThenLookUp])
      const started = yield* Deferred.make<void>()
      const agent = Agent.make({ name: "a", tools: [lookup(started)], maxTokens: 4096 })
      const run = yield* AgentRun.start(agent, "What is a wren?").pipe(Effect.provide(modelLayer(fake)))
      yield* Deferred.await(started).pipe(Effect.timeout("5 seconds"))
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome._tag).toBe("Cancelled")
      expect(outcome.transcript.map((m) => m.content.map((b) => b.type))).toEqual([
        ["text"],
        ["thinking", "text", "tool_use"],
        ["tool_result"]
      ])
      expect(Message.unansweredToolUses(outcome.transcript)).toEqual([])
    })
  )
})
