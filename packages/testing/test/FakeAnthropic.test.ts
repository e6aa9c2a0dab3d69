import Anthropic from "@anthropic-ai/sdk"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { FakeAnthropic } from "../src/index.js"

const body = (overrides: Record<string, unknown> = {}) => ({
  model: "claude-test",
  max_tokens: 64,
  messages: [{ role: "user", content: [{ type: "text", text: "Hello" }] }],
  ...overrides
})

const post = (url: string, payload: unknown, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "test" },
      body: JSON.stringify(payload),
      ...init
    })
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

/** Splits an SSE body into `{ event, data }` pairs. */
const parseSse = (text: string) =>
  text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n")
      const event = lines.find((line) => line.startsWith("event: "))?.slice(7)
      const data = lines.find((line) => line.startsWith("data: "))?.slice(6) ?? ""
      return { event, data: JSON.parse(data) as { type: string; [key: string]: unknown } }
    })

describe("FakeAnthropic", () => {
  it.scopedLive("streams the API's SSE events: message_start, blocks with deltas, message_delta, message_stop", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.toolUse(
          "search",
          { q: "cats" },
          { preamble: "Looking.", id: "toolu_1", chunkSize: 6, inputTokens: 12 }
        )
      ])
      const response = yield* post(fake.url, body({ stream: true }))
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
      const events = parseSse(response.text)
      expect(events.every(({ event, data }) => event === data.type)).toBe(true)
      expect(events.map(({ event }) => event)).toEqual([
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop"
      ])
      expect(events[0]?.data).toMatchObject({ message: { usage: { input_tokens: 12 } } })
      expect(events[5]?.data).toMatchObject({ content_block: { type: "tool_use", id: "toolu_1", name: "search" } })
      expect(events[6]?.data).toMatchObject({ delta: { type: "input_json_delta", partial_json: "" } })
      const json = events
        .slice(7, 9)
        .map(({ data }) => (data["delta"] as { partial_json: string }).partial_json)
        .join("")
      expect(JSON.parse(json)).toEqual({ q: "cats" })
      expect(events[10]?.data).toEqual({
        type: "message_delta",
        delta: { stop_reason: "tool_use", stop_sequence: null },
        usage: { output_tokens: 3 }
      })
      const [record] = yield* fake.requests
      expect(record).toMatchObject({ index: 0, isStream: true, status: 200, isFinished: true, tokensWritten: 3 })
      expect(record?.request?.model).toBe("claude-test")
    })
  )

  it.scopedLive("the real SDK reads its streams and its JSON messages", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.stream([FakeAnthropic.thinkingBlock("Hmm"), FakeAnthropic.textBlock("Hi there")]),
        FakeAnthropic.text("Hi there")
      ])
      const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 })
      const params = { model: "claude-test", max_tokens: 64, messages: [{ role: "user" as const, content: "Hi" }] }
      const types = yield* Effect.promise(async () => {
        const types: Array<string> = []
        for await (const event of await client.messages.create({ ...params, stream: true })) types.push(event.type)
        return types
      })
      expect(types.at(0)).toBe("message_start")
      expect(types.at(-1)).toBe("message_stop")
      const message = yield* Effect.promise(() => client.messages.create(params))
      expect(message.content).toEqual([{ type: "text", text: "Hi there" }])
      expect(message.stop_reason).toBe("end_turn")
    })
  )

  it.scopedLive("paces tokens by interval and stalls, and records when each was written", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text(["a", "b", "c", "d"], { interval: 50, stalls: { 2: 200 }, firstByteDelay: 100 })
      ])
      yield* post(fake.url, body({ stream: true }))
      const [record] = yield* fake.requests
      const times = record?.tokenTimes ?? []
      expect(times).toHaveLength(4)
      expect(times[0]! - record!.startedAt).toBeGreaterThanOrEqual(95)
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(45)
      expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(245)
      expect(FakeAnthropic.tokensWrittenAfter(record!, times[1]!)).toBe(2)
    })
  )

  it.scopedLive("answers scripted HTTP errors with the API's error body and retry-after", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.rateLimited(30),
        FakeAnthropic.overloaded(),
        FakeAnthropic.httpError(401)
      ])
      const limited = yield* post(fake.url, body())
      const overloaded = yield* post(fake.url, body())
      const unauthorized = yield* post(fake.url, body())
      expect(limited.status).toBe(429)
      expect(limited.headers.get("retry-after")).toBe("30")
      expect(JSON.parse(limited.text)).toMatchObject({ type: "error", error: { type: "rate_limit_error" } })
      expect(overloaded.status).toBe(529)
      expect(JSON.parse(overloaded.text)).toMatchObject({ error: { type: "overloaded_error" } })
      expect(JSON.parse(unauthorized.text)).toMatchObject({ error: { type: "authentication_error" } })
    })
  )

  it.scopedLive("rejects what the real API rejects: bad bodies (naming the field), no key, unknown paths", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make(() => FakeAnthropic.text("ok"))
      const camelCase = yield* post(
        fake.url,
        body({
          messages: [{ role: "user", content: [{ type: "tool_result", toolUseId: "toolu_1", content: "x" }] }]
        })
      )
      expect(camelCase.status).toBe(400)
      expect(JSON.parse(camelCase.text).error.message).toMatch(/messages\.0\.content\.0\.tool_use_id/)
      const noKey = yield* post(fake.url, body(), { headers: { "content-type": "application/json" } })
      expect(noKey.status).toBe(401)
      const wrongPath = yield* Effect.promise(() => fetch(`${fake.url}/v1/complete`, { method: "POST" }))
      expect(wrongPath.status).toBe(404)
    })
  )

  it.scopedLive("a script function gets each decoded request and its index; a queue past its end answers 400", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const fake = yield* FakeAnthropic.make((request) => {
        seen.push(`${request.index}:${request.body.model}`)
        return FakeAnthropic.text(`reply ${request.index}`)
      })
      yield* post(fake.url, body())
      yield* post(fake.url, body({ model: "other" }))
      expect(seen).toEqual(["0:claude-test", "1:other"])

      const short = yield* FakeAnthropic.make([FakeAnthropic.text("only one")])
      yield* post(short.url, body())
      const past = yield* post(short.url, body())
      expect(past.status).toBe(400)
      expect(past.text).toMatch(/no reply for request #1/)
    })
  )

  it.scopedLive("keepRequests keeps the latest records only; the others are collected, indices count every one", () =>
    Effect.gen(function* () {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const fake = yield* FakeAnthropic.make((request) => FakeAnthropic.text(`reply ${request.index}`), {
        keepRequests: 3
      })
      yield* post(fake.url, body())
      // What a record holds (the decoded body), weakly: it must go once the record is no longer kept.
      const first = new WeakRef((yield* fake.requests)[0]!.request!)
      for (let i = 1; i < 10; i++) yield* post(fake.url, body())
      expect(yield* fake.requestCount).toBe(10)
      expect((yield* fake.requests).map((record) => record.index)).toEqual([7, 8, 9])
      expect((yield* fake.awaitEnded(9)).isFinished).toBe(true)
      expect(yield* fake.waitUntil((state) => (state.request(6) === undefined ? state.requestCount : undefined))).toBe(
        10
      )
      // A WeakRef's target stays alive until the job that made it ends: collect after a turn of the event loop.
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      gc()
      expect(first.deref()).toBeUndefined()
    })
  )

  it.scopedLive("records a client disconnect: closedAt, no token after it, nothing in flight", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("a b c d e f", { interval: 100 })])
      const controller = new AbortController()
      const reading = Effect.promise(async () => {
        const response = await fetch(`${fake.url}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "test" },
          body: JSON.stringify(body({ stream: true })),
          signal: controller.signal
        })
        await response.text().catch(() => "aborted")
      })
      const fiber = yield* Effect.fork(reading)
      yield* fake.awaitTokens(0, 2)
      const abortedAt = performance.now()
      controller.abort()
      const record = yield* fake.awaitEnded(0)
      yield* fiber.await
      yield* Effect.sleep("300 millis")
      const [after] = yield* fake.requests
      expect(record.closedAt).toBeGreaterThanOrEqual(abortedAt)
      expect(record.isFinished).toBe(false)
      expect(FakeAnthropic.tokensWrittenAfter(after!, abortedAt)).toBe(0)
      expect(yield* fake.inFlight).toBe(0)
    })
  )

  it.scopedLive("stream faults: reset destroys the socket, garbage and error events are written as scripted", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("a b", { fault: { kind: "reset", afterTokens: 1 } }),
        FakeAnthropic.text("a b", { fault: { kind: "garbage", afterTokens: 1 } }),
        FakeAnthropic.text("a b", { fault: { kind: "error-event", afterTokens: 0, errorType: "api_error" } })
      ])
      const reset = yield* post(fake.url, body({ stream: true })).pipe(Effect.sandbox, Effect.flip)
      expect(String(reset)).toMatch(/terminated|fetch failed|socket/i)
      const garbage = yield* post(fake.url, body({ stream: true }))
      expect(garbage.text).toContain("event: content_block_delta\ndata: this is not JSON\n\n")
      const errorEvent = yield* post(fake.url, body({ stream: true }))
      expect(errorEvent.text).toMatch(/event: error\ndata: \{"type":"error","error":\{"type":"api_error"/)
      expect((yield* fake.requests).map((record) => record.isResetByServer)).toEqual([true, false, false])
    })
  )

  it.live("closing the scope stops the server and destroys its open sockets", () =>
    Effect.gen(function* () {
      let url = ""
      const pending = yield* Effect.scoped(
        Effect.gen(function* () {
          const fake = yield* FakeAnthropic.make([FakeAnthropic.hang()])
          url = fake.url
          const pending = fetch(`${url}/v1/messages`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": "test" },
            body: JSON.stringify(body())
          }).then(
            () => "answered",
            () => "failed"
          )
          yield* fake.awaitRequests(1)
          expect(yield* fake.openConnections).toBe(1)
          return pending
        })
      )
      expect(yield* Effect.promise(() => pending)).toBe("failed")
      const again = yield* Effect.promise(() =>
        fetch(`${url}/v1/messages`, { method: "POST" }).then(
          () => "up",
          () => "down"
        )
      )
      expect(again).toBe("down")
    })
  )

  it.live("start() gives a Promise handle with the same records, and close()", () =>
    Effect.promise(async () => {
      const fake = await FakeAnthropic.start([FakeAnthropic.text("hi", { firstByteDelay: 50 })])
      const answered = fetch(`${fake.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "test" },
        body: JSON.stringify(body())
      }).then((response) => response.json())
      const [record] = await fake.awaitRequests(1)
      expect(record?.request?.max_tokens).toBe(64)
      expect(await answered).toMatchObject({ type: "message", content: [{ type: "text", text: "hi" }] })
      expect(fake.requestCount).toBe(1)
      await fake.close()
    })
  )

  it.effect("layer provides the fake as a service", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.FakeAnthropic
      expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(yield* fake.requestCount).toBe(0)
    }).pipe(Effect.provide(FakeAnthropic.layer([])))
  )
})

describe("FakeAnthropic.offline", () => {
  const script = FakeAnthropic.offline({ interval: 0 })
  const request = (messages: ReadonlyArray<unknown>, tools?: ReadonlyArray<unknown>) =>
    ({ index: 0, headers: {}, body: { ...body({ messages }), ...(tools === undefined ? {} : { tools }) } }) as never
  const tools = [
    {
      name: "lookup",
      input_schema: {
        type: "object",
        properties: { query: { type: "string" }, limit: { type: "integer" } },
        required: ["query", "limit"]
      }
    }
  ]

  it("answers a user's text with a streamed text reply that quotes it", () => {
    const reply = script(request([{ role: "user", content: "What is Tether?" }]))
    expect(reply._tag).toBe("Stream")
    const text = reply._tag === "Stream" ? reply.blocks.flatMap((block) => block.chunks).join("") : ""
    expect(text).toContain('You said: "What is Tether?"')
    expect(reply._tag === "Stream" && reply.blocks.every((block) => block.chunks.length > 1)).toBe(true)
  })

  it("calls the first offered tool first, with an input made from its schema, then reports the result", () => {
    const first = script(request([{ role: "user", content: [{ type: "text", text: "find cats" }] }], tools))
    expect(first._tag === "Stream" && first.stopReason).toBe("tool_use")
    const call = first._tag === "Stream" ? first.blocks.find((block) => block.type === "tool_use") : undefined
    expect(call).toMatchObject({ name: "lookup", input: { query: "find cats", limit: 1 } })
    const second = script(
      request(
        [
          { role: "user", content: "find cats" },
          { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "lookup", input: {} }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "3 cats" }] }
        ],
        tools
      )
    )
    const text = second._tag === "Stream" ? second.blocks.flatMap((block) => block.chunks).join("") : ""
    expect(text).toContain("The tool answered: 3 cats")
  })
})

describe("FakeAnthropic faults of a quiet or oversized stream", () => {
  it.scopedLive("a silent fault after the headers writes nothing more; a pings fault writes only pings", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("never", { fault: { kind: "silent", afterTokens: 0, afterHeaders: true } }),
        FakeAnthropic.text("never", { fault: { kind: "pings", afterTokens: 0, afterHeaders: true, pingInterval: 10 } })
      ])
      for (const index of [0, 1]) {
        const controller = new AbortController()
        const response = yield* Effect.promise(() =>
          fetch(`${fake.url}/v1/messages`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-api-key": "test" },
            body: JSON.stringify(body({ stream: true })),
            signal: controller.signal
          })
        )
        expect(response.status).toBe(200)
        const reader = response.body!.getReader()
        const read = index === 0 ? undefined : yield* Effect.promise(() => reader.read())
        yield* Effect.sleep("100 millis")
        controller.abort()
        const record = yield* fake.awaitEnded(index)
        expect(record.closedAt).toBeDefined()
        if (index === 0) expect(record).toMatchObject({ bytesWritten: 0, pingsWritten: 0, tokensWritten: 0 })
        else {
          expect(new TextDecoder().decode(read?.value)).toMatch(/^event: ping\n/)
          expect(record.pingsWritten).toBeGreaterThanOrEqual(3)
          expect(record.tokensWritten).toBe(0)
        }
      }
    })
  )

  it.scopedLive("an oversized line is written only as fast as the client reads it", () =>
    Effect.gen(function* () {
      const bytes = 64 * 1024 * 1024
      const fake = yield* FakeAnthropic.make([
        FakeAnthropic.text("Hi", { fault: { kind: "oversized-line", afterTokens: 0, bytes } })
      ])
      const controller = new AbortController()
      yield* Effect.promise(() =>
        fetch(`${fake.url}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "test" },
          body: JSON.stringify(body({ stream: true })),
          signal: controller.signal
        })
      )
      yield* Effect.sleep("300 millis") // the client reads nothing
      const stalled = (yield* fake.requests)[0]!.bytesWritten
      controller.abort()
      expect(stalled).toBeGreaterThan(0)
      expect(stalled).toBeLessThan(bytes / 4)
      expect((yield* fake.awaitEnded(0)).isFinished).toBe(false)
    })
  )
})
