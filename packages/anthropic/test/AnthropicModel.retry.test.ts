import { describe, expect, it } from "@effect/vitest"
import { LanguageModel } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Fiber, RateLimiter, Stream } from "effect"
import { performance } from "node:perf_hooks"
import { collectTurn, modelFor, turnError, userTurn } from "./helpers.js"

const gapBetween = (records: ReadonlyArray<FakeAnthropic.RecordedRequest>, from: number, to: number) =>
  (records[to]?.startedAt ?? Infinity) - (records[from]?.startedAt ?? 0)

describe("AnthropicModel: retries", () => {
  it.scopedLive("429 then 529 then success: the turn is retried and succeeds", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.rateLimited(),
        FakeAnthropic.overloaded(),
        FakeAnthropic.text("Third time lucky.")
      ])
      const model = yield* modelFor(fake, { maxRetries: 3 })
      const events = yield* collectTurn(model)
      expect(events.at(-1)).toEqual(LanguageModel.ModelEvent.Stop({ reason: "end_turn" }))
      expect(events.filter((event) => event._tag === "TextDelta")).toHaveLength(3)
      expect((yield* fake.requests).map((record) => record.status)).toEqual([429, 529, 200])
    })
  )

  for (const [name, refusal] of [
    ["a 429", FakeAnthropic.rateLimited(undefined, { retryAfterMs: 400 })],
    ["a 503", FakeAnthropic.httpError(503, { retryAfterMs: 400 })]
  ] as const) {
    it.scopedLive(`${name}'s retry-after is honoured: the next attempt waits at least what the server asked`, () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropic.make([refusal, FakeAnthropic.text("ok")])
        const model = yield* modelFor(fake, { maxRetries: 1, retryBaseDelay: "10 millis" })
        yield* collectTurn(model)
        const gap = gapBetween(yield* fake.requests, 0, 1)
        expect(gap).toBeGreaterThanOrEqual(390)
      })
    )
  }

  it.scopedLive("retry-after is capped by maxRetryDelay: a server asking for an hour does not park the run", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.overloaded({ retryAfter: 3600 }), FakeAnthropic.text("ok")])
      const model = yield* modelFor(fake, { maxRetries: 1, maxRetryDelay: "200 millis" })
      const started = performance.now()
      yield* collectTurn(model)
      const gap = gapBetween(yield* fake.requests, 0, 1)
      console.log(`[retry cap] the server asked for 3600 s; the retry came after ${gap.toFixed(0)} ms (cap 200 ms)`)
      expect(gap).toBeGreaterThanOrEqual(190)
      expect(performance.now() - started).toBeLessThan(3000)
    })
  )

  it.scopedLive("interrupting during the backoff after a 529 starts no new request", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.overloaded({ retryAfter: 1 }), FakeAnthropic.text("never")])
      const model = yield* modelFor(fake, { maxRetries: 3 })
      const fiber = yield* LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
      yield* fake.awaitEnded(0)
      yield* Effect.sleep("100 millis") // the client has the 529 and sleeps ~1 s before the retry
      const interruptedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      expect(performance.now() - interruptedAt).toBeLessThan(250)
      yield* Effect.sleep("1500 millis") // well past the moment the retry was due
      expect(yield* fake.requestCount).toBe(1)
    })
  )

  it.scopedLive("a failure after the first event is not replayed, even when retryable", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("Half a", { interval: 30, fault: { kind: "error-event", afterTokens: 1 } }),
        FakeAnthropic.text("replayed")
      ])
      const model = yield* modelFor(fake, { maxRetries: 3 })
      const texts: Array<string> = []
      const error = yield* Effect.flip(
        LanguageModel.toStream(model, userTurn()).pipe(
          Stream.runForEach((event) => Effect.sync(() => event._tag === "TextDelta" && texts.push(event.text)))
        )
      )
      expect(error._tag).toBe("OverloadedError")
      expect(texts).toEqual(["Half "])
      expect(yield* fake.requestCount).toBe(1)
    })
  )

  it.scopedLive("a connection reset before any event is retried; maxRetries bounds the attempts", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.resetConnection(),
        FakeAnthropic.httpError(500),
        FakeAnthropic.httpError(500),
        FakeAnthropic.text("too late")
      ])
      const model = yield* modelFor(fake, { maxRetries: 2 })
      const error = yield* turnError(model)
      expect(error._tag).toBe("ServerError")
      expect(yield* fake.requestCount).toBe(3)
    })
  )
})

describe("AnthropicModel: rate limiting", () => {
  it.scopedLive("a request interrupted while waiting for a permit takes none: the next one is not delayed", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({ limit: 1, interval: "400 millis", algorithm: "fixed-window" })
      const fake = yield* FakeAnthropic.make(() => FakeAnthropic.text("ok"))
      const model = yield* modelFor(fake, { rateLimiter: limiter })
      const windowStart = performance.now()
      yield* collectTurn(model) // takes the only permit of this window

      const waiting = yield* LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
      yield* Effect.sleep("100 millis")
      expect(yield* fake.requestCount).toBe(1) // still waiting for a permit
      const interruptedAt = performance.now()
      yield* Fiber.interrupt(waiting)
      expect(performance.now() - interruptedAt).toBeLessThan(100)

      // After the window, a new turn gets the permit at once: the interrupted one did not hold it.
      yield* Effect.sleep(Math.max(0, windowStart + 450 - performance.now()))
      const startedAt = performance.now()
      yield* collectTurn(model)
      expect(performance.now() - startedAt).toBeLessThan(300)
      expect(yield* fake.requestCount).toBe(2)
    })
  )
})
