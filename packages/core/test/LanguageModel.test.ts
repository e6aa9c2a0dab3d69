import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, FastCheck, Layer, Schema } from "effect"
import { Agent, AgentRun, CancelReason, LanguageModel, Message } from "@tether/core"

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

describe("LanguageModel.onAbort", () => {
  /** A model that keeps each turn's request, listens to it with `onAbort` (a copy too, on its signal) and waits. */
  const listening = () => {
    const heard: Array<string> = []
    const requests: Array<LanguageModel.TurnRequest> = []
    const model = LanguageModel.LanguageModel.of({
      runTurn: (request) =>
        Effect.suspend(() => {
          requests.push(request)
          LanguageModel.onAbort(request, (reason) =>
            heard.push(`request: ${(reason as CancelReason.CancelReason)._tag}`)
          )
          const unlisten = LanguageModel.onAbort(request, () => heard.push("unlistened"))
          unlisten()
          // A copy made before the cancel: its `signal` is the request's, made by the spread.
          const copy = { ...request }
          LanguageModel.onAbort(copy, (reason) => heard.push(`copy: ${(reason as CancelReason.CancelReason)._tag}`))
          return Effect.never
        })
    })
    return { heard, requests, layer: Layer.succeed(LanguageModel.LanguageModel, model) }
  }

  it.effect("hears a run's cancel in the very call, with its reason, and not once it stopped listening", () => {
    const { heard, layer, requests } = listening()
    return Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "go")
      while (requests.length === 0) yield* Effect.yieldNow()
      expect(heard).toEqual([])
      yield* run.requestCancel(new CancelReason.UserAbort())
      // Synchronously: no fiber of the run has run in between.
      expect(heard).toEqual(["copy: UserAbort", "request: UserAbort"])
      expect(requests[0]!.signal?.aborted).toBe(true)
      expect(requests[0]!.signal?.reason).toMatchObject({ _tag: "UserAbort" })
      // Listening once the request is aborted hears it at once.
      LanguageModel.onAbort(requests[0]!, (reason) => heard.push(`late: ${(reason as CancelReason.CancelReason)._tag}`))
      expect(heard).toContain("late: UserAbort")
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it("listens to a request made by hand on its signal, and to one without a signal not at all", () => {
    const controller = new AbortController()
    const heard: Array<unknown> = []
    LanguageModel.onAbort({ messages: [], tools: [], maxTokens: 1, signal: controller.signal }, (r) => heard.push(r))
    const unlisten = LanguageModel.onAbort({ messages: [], tools: [], maxTokens: 1, signal: controller.signal }, () =>
      heard.push("unlistened")
    )
    unlisten()
    expect(LanguageModel.onAbort({ messages: [], tools: [], maxTokens: 1 }, () => heard.push("never"))).toBeTypeOf(
      "function"
    )
    controller.abort("why")
    expect(heard).toEqual(["why"])
  })
})
