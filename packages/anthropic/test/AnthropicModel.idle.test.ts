import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, LanguageModel, ModelError } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Deferred, Effect, Either, Fiber, TestClock } from "effect"
import { AnthropicModel } from "../src/index.js"
import { apiKey, collectTurn, modelFor, turnError, unhandledRejectionsDuring, userTurn } from "./helpers.js"

/** Starts a turn; returns its fiber and two Deferreds done as its first and second text deltas arrive. */
const startTurn = (model: LanguageModel.Service) =>
  Effect.gen(function* () {
    const firstText = yield* Deferred.make<void>()
    const secondText = yield* Deferred.make<void>()
    let texts = 0
    const fiber = yield* model
      .runTurn(userTurn(), (events) => {
        for (const event of events) {
          if (event._tag !== "TextDelta") continue
          texts++
          Deferred.unsafeDone(texts === 1 ? firstText : secondText, Effect.void)
        }
      })
      .pipe(Effect.either, Effect.fork)
    return { fiber, firstText, secondText }
  })

describe("AnthropicModel: stream idle timeout (TestClock)", () => {
  it.scoped("pings do not hold a stream open; it fails at the idle timeout (60 s), not before", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text(["Hello ", "there"], { fault: { kind: "pings", afterTokens: 1, pingInterval: 10 } })
      ])
      const model = yield* modelFor(fake)
      const { fiber, firstText } = yield* startTurn(model)
      yield* Deferred.await(firstText)
      const pings = (n: number) =>
        fake.waitUntil((state) => ((state.request(0)?.pingsWritten ?? 0) >= n ? true : undefined))
      yield* pings(2)
      yield* TestClock.adjust("30 seconds")
      // More pings arrive half-way: were they counted, the timeout would move to 90 s.
      yield* pings(6)
      yield* TestClock.adjust("29 seconds")
      expect(yield* Fiber.poll(fiber)).toEqual(expect.objectContaining({ _tag: "None" }))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(Either.getLeft(result)).toEqual(
        expect.objectContaining({
          value: expect.objectContaining({ _tag: "StreamIdleTimeoutError", idleMillis: 60_000 })
        })
      )
      const record = yield* fake.awaitEnded(0)
      expect(record.closedAt).toBeDefined()
      expect(record.isFinished).toBe(false)
      expect(record.tokensWritten).toBe(1)
    })
  )

  it.scoped("each event restarts the idle time", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text(["Hello ", "there ", "never"], {
          stalls: { 1: 200 },
          fault: { kind: "silent", afterTokens: 2 }
        })
      ])
      const model = yield* modelFor(fake)
      const { fiber, firstText, secondText } = yield* startTurn(model)
      yield* Deferred.await(firstText)
      yield* TestClock.adjust("40 seconds")
      yield* Deferred.await(secondText) // at 40 s of the TestClock: the idle time starts again
      yield* TestClock.adjust("40 seconds")
      expect(yield* Fiber.poll(fiber)).toEqual(expect.objectContaining({ _tag: "None" }))
      yield* TestClock.adjust("20 seconds")
      const result = yield* Fiber.join(fiber)
      expect(Either.isLeft(result) && result.left._tag).toBe("StreamIdleTimeoutError")
      expect((yield* fake.awaitEnded(0)).closedAt).toBeDefined()
    })
  )
})

describe("AnthropicModel: stream idle timeout (real sockets)", () => {
  it.scopedLive("a stream that only pings is aborted at the idle timeout: the server sees its socket close", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text(["Hello"], { fault: { kind: "pings", afterTokens: 0, pingInterval: 20 } })
      ])
      const model = yield* modelFor(fake, { streamIdleTimeout: "300 millis" })
      let error: unknown
      const rejections = yield* unhandledRejectionsDuring(Effect.map(turnError(model), (e) => (error = e)))
      expect(error).toBeInstanceOf(ModelError.StreamIdleTimeoutError)
      expect(rejections).toEqual([])
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
      expect(record.closedAt).toBeDefined()
      expect(record.isFinished).toBe(false)
      expect(record.pingsWritten).toBeGreaterThanOrEqual(3)
      expect(yield* fake.inFlight).toBe(0)
      expect(yield* fake.requestCount).toBe(1)
    })
  )

  it.scopedLive("a stream quiet from its headers on emitted nothing: it is retried, and the retry succeeds", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("never", { fault: { kind: "silent", afterTokens: 0, afterHeaders: true } }),
        FakeAnthropic.text("Hello there")
      ])
      const model = yield* modelFor(fake, { streamIdleTimeout: "200 millis" })
      const events = yield* collectTurn(model)
      expect(events.filter((event) => event._tag === "TextDelta").map((event) => event.text)).toEqual([
        "Hello ",
        "there"
      ])
      const [first, second] = yield* fake.requests
      expect(first).toMatchObject({ status: 200, tokensWritten: 0, isFinished: false })
      expect(first!.closedAt).toBeDefined()
      expect(second?.isFinished).toBe(true)
    })
  )

  it.scopedLive("a stream quiet after its first event is not retried: the run fails with StreamIdleTimeoutError", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text(["Hello ", "there"], { fault: { kind: "silent", afterTokens: 1 } }),
        FakeAnthropic.text("A retry would have answered this.")
      ])
      const model = AnthropicModel.layer({ apiKey, baseURL: fake.url, streamIdleTimeout: "200 millis" })
      const outcome = yield* AgentRun.start(Agent.make({ name: "a" }), "hi").pipe(
        Effect.flatMap((run) => run.outcome),
        Effect.provide(model),
        Effect.timeout("5 seconds")
      )
      expect(outcome).toMatchObject({ _tag: "Failed", error: expect.stringContaining("StreamIdleTimeoutError") })
      expect(yield* fake.requestCount).toBe(1)
      expect((yield* fake.awaitEnded(0)).closedAt).toBeDefined()
    })
  )
})
