import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck, Schema } from "effect"
import { LanguageModel, Message } from "@tether/core"

const Tool = Schema.Struct({ name: Schema.String, description: Schema.String, inputSchema: Schema.Object })

describe("LanguageModel.estimateInputTokens", () => {
  it("counts the JSON of the whole request, a transcript measured again or grown by a message alike", () => {
    const byFormula = (request: Omit<LanguageModel.TurnRequest, "maxTokens">) =>
      LanguageModel.estimateTokens(request.system ?? "") +
      Math.ceil(JSON.stringify(request.messages).length / 4) +
      Math.ceil(JSON.stringify(request.tools).length / 4) +
      8
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(Arbitrary.make(Message.Message), { maxLength: 6 }),
        Arbitrary.make(Message.Message),
        FastCheck.array(Arbitrary.make(Tool), { maxLength: 3 }),
        FastCheck.option(FastCheck.string()),
        (messages, next, tools, system) => {
          const request = { messages, tools, system: system ?? undefined }
          expect(LanguageModel.estimateInputTokens(request)).toBe(byFormula(request))
          expect(LanguageModel.estimateInputTokens(request)).toBe(byFormula(request))
          const grown = { ...request, messages: [...messages, next] }
          expect(LanguageModel.estimateInputTokens(grown)).toBe(byFormula(grown))
        }
      ),
      { numRuns: 200 }
    )
  })
})
