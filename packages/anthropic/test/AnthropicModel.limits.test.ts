import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, ModelError } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { Effect } from "effect"
import { decoder } from "../src/internal/sse.js"
import { AnthropicModel } from "../src/index.js"
import { apiKey, collectTurn, modelFor, turnError, unhandledRejectionsDuring } from "./helpers.js"

const MiB = 1024 * 1024

/** Decodes a body in one chunk: its events' data, or the cap it passed. */
const readCapped = (body: string, limits: { lineBytes: number; eventBytes: number }) =>
  Effect.sync(() => {
    const sse = decoder(limits)
    const messages = sse.push(new TextEncoder().encode(body))
    return typeof messages === "string" ? messages : [...messages, ...sse.end()].map((message) => message.data)
  })

describe("AnthropicModel: SSE size caps", () => {
  it.effect("the caps count a line up to LF, CR or CRLF, and an event up to its blank line", () =>
    Effect.gen(function* () {
      const limits = { lineBytes: 10, eventBytes: 25 }
      const lines = (eol: string) => `data: 1234${eol}data: 5678${eol}${eol}data: 9abc${eol}data: defg${eol}${eol}`
      for (const eol of ["\n", "\r", "\r\n"]) {
        expect(yield* readCapped(lines(eol), limits)).toEqual(["1234\n5678", "9abc\ndefg"])
      }
      expect(yield* readCapped("data: 12345\n\n", limits)).toBe("line")
      expect(yield* readCapped("data: 1234\r\ndata: 5678\r\ndata: 9abc\r\n\r\n", limits)).toBe("event")
    })
  )

  it.scopedLive("a 64 MiB line without a newline fails the turn at the 1 MiB cap; the client stops reading", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("Hello", { fault: { kind: "oversized-line", afterTokens: 0, bytes: 64 * MiB } })
      ])
      const model = yield* modelFor(fake)
      let error: unknown
      const rejections = yield* unhandledRejectionsDuring(Effect.map(turnError(model), (e) => (error = e)))
      expect(rejections).toEqual([])
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("5 seconds"))
      console.log(
        `[oversized line] the server wrote ${(record.bytesWritten / MiB).toFixed(1)} MiB of a 64 MiB line before ` +
          `the client closed`
      )
      expect(error).toBeInstanceOf(ModelError.MalformedResponseError)
      expect(error).toMatchObject({ message: `an SSE line of the response passed the ${MiB}-byte cap` })
      expect(record.closedAt).toBeDefined()
      expect(record.isFinished).toBe(false)
      // What the client read plus what the socket buffers held when it closed: far from the whole line.
      expect(record.bytesWritten).toBeLessThan(16 * MiB)
      expect(yield* fake.requestCount).toBe(1)
    })
  )

  it.scopedLive("a 64 MiB event of short lines fails the turn at the 4 MiB cap; the client stops reading", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("Hello", { fault: { kind: "oversized-event", afterTokens: 1, bytes: 64 * MiB } })
      ])
      const model = yield* modelFor(fake)
      const error = yield* turnError(model)
      const record = yield* fake.awaitEnded(0).pipe(Effect.timeout("5 seconds"))
      console.log(`[oversized event] the server wrote ${(record.bytesWritten / MiB).toFixed(1)} MiB of a 64 MiB event`)
      expect(error).toBeInstanceOf(ModelError.MalformedResponseError)
      expect(error.message).toBe(`an SSE event of the response passed the ${4 * MiB}-byte cap`)
      expect(record.closedAt).toBeDefined()
      expect(record.bytesWritten).toBeLessThan(20 * MiB)
    })
  )

  it.scopedLive("the caps are options: a stream within them is read as usual, one past them fails", () =>
    Effect.gen(function* () {
      const chunk = (size: number) => "x".repeat(size)
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text([chunk(500), chunk(500)]),
        FakeAnthropic.text([chunk(500), chunk(1500)])
      ])
      const model = yield* modelFor(fake, { maxLineBytes: 1000, maxRetries: 0 })
      const events = yield* collectTurn(model)
      expect(events.filter((event) => event._tag === "TextDelta")).toHaveLength(2)
      const error = yield* turnError(model)
      expect(error).toMatchObject({ _tag: "MalformedResponseError", message: expect.stringContaining("1000-byte") })
    })
  )

  it.scopedLive(
    "a run on a server sending an oversized line fails with MalformedResponseError at the cap, not a crash",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeAnthropic.make([
          FakeAnthropic.text("Hello", { fault: { kind: "oversized-line", afterTokens: 0, bytes: 32 * MiB } })
        ])
        const model = AnthropicModel.layer({ apiKey, baseURL: fake.url, maxLineBytes: 64 * 1024 })
        const outcome = yield* AgentRun.start(Agent.make({ name: "a" }), "hi").pipe(
          Effect.flatMap((run) => run.outcome),
          Effect.provide(model),
          Effect.timeout("10 seconds")
        )
        expect(outcome).toMatchObject({
          _tag: "Failed",
          error: expect.stringContaining(
            "MalformedResponseError: an SSE line of the response passed the 65536-byte cap"
          )
        })
        expect((yield* fake.awaitEnded(0)).bytesWritten).toBeLessThan(12 * MiB)
      })
  )
})
