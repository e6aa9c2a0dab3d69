import Anthropic from "@anthropic-ai/sdk"
import { describe, expect, it } from "@effect/vitest"
import { LanguageModel } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Fiber, Stream } from "effect"
import { performance } from "node:perf_hooks"
import { toParams } from "../src/internal/request.js"
import { apiKey, firstAbortLatency, modelFor, unhandledRejectionsDuring, userTurn } from "./helpers.js"

/** Four tokens, one second apart: a stream that stalls between tokens. */
const stalled = () => FakeAnthropic.text(["one ", "two ", "three ", "four"], { interval: 1000 })

/** Sleeps until `millis` after `instant` (a performance.now() time). */
const sleepUntil = (instant: number, millis: number) =>
  Effect.suspend(() => Effect.sleep(Math.max(0, instant + millis - performance.now())))

describe("AnthropicModel: signal-first abort", () => {
  it.scopedLive("interrupting a stalled stream mid-gap closes the connection at once; no token follows", () =>
    Effect.gen(function* () {
      const firstAbort = yield* firstAbortLatency
      const fake = yield* FakeAnthropic.make([stalled()])
      const model = yield* modelFor(fake)
      const received: Array<string> = []
      const fiber = yield* LanguageModel.toStream(model, userTurn()).pipe(
        Stream.runForEach((event) => Effect.sync(() => received.push(event._tag))),
        Effect.fork
      )
      const second = yield* fake.awaitTokens(0, 2)
      yield* Effect.sleep("20 millis") // let the client read the token: we are now mid-gap

      const interruptedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      const interruptReturnedAfter = performance.now() - interruptedAt
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
      const closeLatency = (record.closedAt ?? Infinity) - interruptedAt

      // Wait past the moment the third token was due, then look again.
      yield* sleepUntil(second.tokenTimes[1] ?? 0, 1300)
      const [after] = yield* fake.requests
      console.log(
        `[stalled stream] interrupt returned after ${interruptReturnedAfter.toFixed(1)} ms; ` +
          `server saw the connection close ${closeLatency.toFixed(1)} ms after the interrupt (token gap 1000 ms; ` +
          `first abort of this process, cold: ${firstAbort.toFixed(1)} ms)`
      )
      expect(firstAbort).toBeLessThan(500)
      expect(received.filter((tag) => tag === "TextDelta")).toHaveLength(2)
      expect(record.isFinished).toBe(false)
      expect(closeLatency).toBeLessThan(250)
      expect(after?.tokensWritten).toBe(2)
      expect(FakeAnthropic.tokensWrittenAfter(after!, interruptedAt)).toBe(0)
      expect(yield* fake.inFlight).toBe(0)
    })
  )

  it.scopedLive("the push-based runTurn: interrupting it mid-gap closes the connection at once too", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([stalled()])
      const model = yield* modelFor(fake)
      const received: Array<string> = []
      const fiber = yield* model
        .runTurn(userTurn(), (events) => events.forEach((e) => received.push(e._tag)))
        .pipe(Effect.fork)
      yield* fake.awaitTokens(0, 2)
      yield* Effect.sleep("20 millis")
      const interruptedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
      expect(received.filter((tag) => tag === "TextDelta")).toHaveLength(2)
      expect(record.isFinished).toBe(false)
      expect((record.closedAt ?? Infinity) - interruptedAt).toBeLessThan(250)
      yield* Effect.sleep("1100 millis")
      const [after] = yield* fake.requests
      expect(FakeAnthropic.tokensWrittenAfter(after!, interruptedAt)).toBe(0)
    })
  )

  it.scopedLive("the push-based runTurn gives the same events as the stream", () =>
    Effect.gen(function* () {
      const reply = FakeAnthropic.toolUse("search", { query: "effect" }, { preamble: "Let me look. " })
      const fake = yield* FakeAnthropic.make([reply, reply])
      const model = yield* modelFor(fake)
      const streamed = Array.from(yield* Stream.runCollect(LanguageModel.toStream(model, userTurn())))
      const pushed: Array<unknown> = []
      yield* model.runTurn(userTurn(), (events) => pushed.push(...events))
      expect(pushed).toEqual(streamed)
      expect(streamed.at(-1)).toMatchObject({ _tag: "Stop", reason: "tool_use" })
    })
  )

  it.scopedLive(
    "the trap, for contrast: Stream.fromAsyncIterable over the SDK stream closes only at the next token",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropic.make([stalled()])
        const client = new Anthropic({ apiKey, baseURL: fake.url, maxRetries: 0, logLevel: "off" })
        // NOT how @tether/anthropic does it: the abort sits in an outer finalizer, after iterator.return().
        const slow = Stream.unwrapScoped(
          Effect.gen(function* () {
            const controller = yield* Effect.acquireRelease(
              Effect.sync(() => new AbortController()),
              (controller) => Effect.sync(() => controller.abort())
            )
            const events = yield* Effect.promise(() =>
              client.messages.create(toParams("claude-test", userTurn()), { signal: controller.signal })
            )
            return Stream.fromAsyncIterable(events, (cause) => cause)
          })
        )
        const fiber = yield* slow.pipe(Stream.runDrain, Effect.fork)
        yield* fake.awaitTokens(0, 2)
        yield* Effect.sleep("20 millis")
        const interruptedAt = performance.now()
        yield* Fiber.interrupt(fiber)
        const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("3 seconds"))
        const closeLatency = (record.closedAt ?? record.finishedAt ?? Infinity) - interruptedAt
        console.log(`[trap: fromAsyncIterable] server saw the close ${closeLatency.toFixed(1)} ms after the interrupt`)
        expect(closeLatency).toBeGreaterThan(500)
        expect(FakeAnthropic.tokensWrittenAfter(record, interruptedAt)).toBeGreaterThanOrEqual(1)
      })
  )

  it.scopedLive("interrupting before the response headers aborts the request without an unhandled rejection", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.hang(),
        FakeAnthropic.text("late", { firstByteDelay: 2000 })
      ])
      const model = yield* modelFor(fake)
      const rejections = yield* unhandledRejectionsDuring(
        Effect.gen(function* () {
          for (const index of [0, 1]) {
            const fiber = yield* LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
            yield* fake.awaitRequests(index + 1)
            const interruptedAt = performance.now()
            yield* Fiber.interrupt(fiber)
            const record = yield* fake.awaitEnded(index).pipe(Effect.timeout("1 second"))
            expect(record.status).toBeUndefined()
            expect((record.closedAt ?? Infinity) - interruptedAt).toBeLessThan(250)
          }
        })
      )
      expect(rejections).toEqual([])
      expect(yield* fake.requestCount).toBe(2)
    })
  )

  it.scopedLive("100 concurrent streams interrupted together: every connection closes, none is left", () =>
    Effect.gen(function* () {
      yield* firstAbortLatency
      const fake = yield* FakeAnthropic.make(() => FakeAnthropic.text("tick ".repeat(50), { interval: 250 }))
      const model = yield* modelFor(fake)
      const fibers = yield* Effect.forEach(Array.from({ length: 100 }), () =>
        LanguageModel.toStream(model, userTurn()).pipe(Stream.runDrain, Effect.fork)
      )
      yield* fake
        .waitUntil((state) =>
          state.requests.length === 100 && state.requests.every((record) => record.tokensWritten >= 1)
            ? true
            : undefined
        )
        .pipe(Effect.timeout("5 seconds"))
      expect(yield* fake.openConnections).toBe(100)

      const interruptedAt = performance.now()
      yield* Fiber.interruptAll(fibers)
      // Every request's own socket closes at once...
      yield* fake.waitUntil((state) => (state.inFlight === 0 ? true : undefined)).pipe(Effect.timeout("2 seconds"))
      const records = yield* fake.requests
      const slowest = Math.max(...records.map((record) => (record.closedAt ?? Infinity) - interruptedAt))
      expect(records.every((record) => record.closedAt !== undefined && !record.isFinished)).toBe(true)
      // ...and no other is left: on Node's fetch (undici, passed as `fetch`), undici re-dials a spare idle socket
      // after an abort (nodejs/undici#5845), which it closes after its keep-alive timeout (~4 s), so the wait is
      // bounded by that; the default transport on Node re-dials none.
      const spare = yield* fake.openConnections
      yield* fake.awaitOpenConnections(0).pipe(Effect.timeout("7 seconds"))
      const drained = performance.now() - interruptedAt
      console.log(
        `[100 streams] all 100 request sockets closed within ${slowest.toFixed(1)} ms of the interrupt; ` +
          `${spare} spare idle sockets (re-dialed by undici, if it is the transport) were gone after ${drained.toFixed(0)} ms`
      )
      expect(yield* fake.requestCount).toBe(100)
      expect(yield* fake.openConnections).toBe(0)
    })
  )

  it.scopedLive(
    "a request's abort errors are made without stacks; the limit is restored, the run's signal untouched",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropic.make([stalled(), stalled()])
        // What the request's own abort listeners see: the SDK's and fetch's run in the same call as this one.
        const seen: Array<{ limit: number; stack: string | undefined }> = []
        const model = yield* modelFor(fake, {
          fetch: (input, init) => {
            init?.signal?.addEventListener("abort", () =>
              seen.push({ limit: Error.stackTraceLimit, stack: new Error("made in the abort").stack })
            )
            return fetch(input, init)
          }
        })
        const limit = Error.stackTraceLimit
        const framesIn = (stack: string | undefined) =>
          (stack ?? "").split("\n").filter((l) => l.includes(" at ")).length

        // A cancel through the run's signal; a listener of the user's on that signal keeps its stacks.
        const run = new AbortController()
        const fiber = yield* model.runTurn({ ...userTurn(), signal: run.signal }, () => {}).pipe(Effect.fork)
        yield* fake.awaitTokens(0, 1)
        const user: Array<string | undefined> = []
        run.signal.addEventListener("abort", () => user.push(new Error("the user's").stack))
        run.abort("stop")
        yield* fake.awaitEnded(0).pipe(Effect.timeout("2 seconds"))
        // (A run interrupts the turn's fiber as it aborts the signal; the turn waits for that.)
        yield* Fiber.interrupt(fiber)
        // An interrupt (the request released before its end).
        const interrupted = yield* model.runTurn(userTurn(), () => {}).pipe(Effect.fork)
        yield* fake.awaitTokens(1, 1)
        yield* Fiber.interrupt(interrupted)
        yield* fake.awaitEnded(1).pipe(Effect.timeout("2 seconds"))

        expect(seen.map((s) => s.limit)).toEqual([0, 0])
        expect(seen.map((s) => framesIn(s.stack))).toEqual([0, 0])
        expect(Error.stackTraceLimit).toBe(limit)
        expect(framesIn(new Error("after").stack)).toBeGreaterThan(0)
        expect(user).toHaveLength(1)
        expect(framesIn(user[0])).toBeGreaterThan(0)
      })
  )
})
