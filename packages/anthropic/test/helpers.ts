import { LanguageModel, Message } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Fiber, Stream } from "effect"
import { performance } from "node:perf_hooks"
import { AnthropicModel } from "../src/index.js"

/** A dummy key: every test talks to the fake server, never to the real API. */
export const apiKey = "sk-ant-test-not-a-real-key"

export const userTurn = (text = "Hello"): LanguageModel.TurnRequest => ({
  messages: [Message.user(text)],
  tools: [],
  maxTokens: 256
})

export const modelFor = (fake: FakeAnthropic.Service, options: Partial<AnthropicModel.Options> = {}) =>
  AnthropicModel.make({ apiKey, baseURL: fake.url, retryBaseDelay: "10 millis", ...options })

/** Runs one turn to the end and returns its events. */
export const collectTurn = (model: LanguageModel.Service, request: LanguageModel.TurnRequest = userTurn()) =>
  LanguageModel.toStream(model, request).pipe(
    Stream.runCollect,
    Effect.map((events) => [...events])
  )

/** Runs one turn and returns its typed failure (a defect fails the test). */
export const turnError = (model: LanguageModel.Service, request: LanguageModel.TurnRequest = userTurn()) =>
  Effect.flip(LanguageModel.toStream(model, request).pipe(Stream.runDrain))

/** Collects unhandled promise rejections while `effect` runs, plus a short grace period. */
export const unhandledRejectionsDuring = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const reasons: Array<unknown> = []
      const listener = (reason: unknown) => reasons.push(reason)
      process.on("unhandledRejection", listener)
      return { reasons, listener }
    }),
    ({ reasons }) => effect.pipe(Effect.zipLeft(Effect.sleep("100 millis")), Effect.as(reasons)),
    ({ listener }) => Effect.sync(() => process.off("unhandledRejection", listener))
  )

/**
 * Interrupts one stream in mid-gap against a throwaway fake and returns how long the server took to see
 * the close. The first abort in a process pays a one-time cost (V8 compiling the transport's abort path,
 * 10-40 ms, more on a loaded machine); tests that measure latency warm up first and report this figure too.
 */
export const firstAbortLatency = Effect.scoped(
  Effect.gen(function* () {
    const fake = yield* FakeAnthropic.make([FakeAnthropic.text(["warm ", "up ", "now"], { interval: 1000 })])
    const model = yield* modelFor(fake)
    const fiber = yield* LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
    yield* fake.awaitTokens(0, 1)
    yield* Effect.sleep("20 millis")
    const interruptedAt = performance.now()
    yield* Fiber.interrupt(fiber)
    const record = yield* fake.awaitEnded(0)
    return (record.closedAt ?? Infinity) - interruptedAt
  })
)
