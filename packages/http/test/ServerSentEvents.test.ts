import { HttpServerRequest } from "@effect/platform"
import type { HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, FastCheck, Fiber, Option, Queue, Schema, Stream, TestClock } from "effect"
import { CancelReason, RunEvent } from "@tether/core"
import { RouteError, ServerSentEvents } from "@tether/http"

describe("ServerSentEvents", () => {
  it("frames an event with its seq as id, its tag as event and its JSON as data", () => {
    const event = new RunEvent.RunCancelled({
      runId: "run-1",
      seq: 12,
      agent: "shop",
      reason: new CancelReason.UserAbort(),
      tokensUsed: 40,
      tokensEstimated: true,
      tally: { used: 40, reportedInput: 30, reportedOutput: 4, estimated: 6 },
      writesRolledBack: 2
    })
    const frame = ServerSentEvents.encode(event)
    const [id, name, data, ...rest] = frame.split("\n")
    expect(id).toBe("id: 12")
    expect(name).toBe("event: RunCancelled")
    expect(JSON.parse(data!.slice("data: ".length))).toEqual({
      _tag: "RunCancelled",
      runId: "run-1",
      seq: 12,
      agent: "shop",
      reason: { _tag: "UserAbort" },
      tokensUsed: 40,
      tokensEstimated: true,
      tally: { used: 40, reportedInput: 30, reportedOutput: 4, estimated: 6 },
      writesRolledBack: 2
    })
    expect(rest).toEqual(["", ""])
  })

  it("keeps multi-line text on one data line", () => {
    const frame = ServerSentEvents.encode(new RunEvent.TextDelta({ runId: "r", seq: 1, agent: "a", text: "a\nb\n\nc" }))
    expect(frame.split("\n\n")).toHaveLength(2)
  })

  it.prop(
    "a TextDelta's frame is the Schema encoder's, for any text and ids",
    { runId: Schema.String, seq: Schema.NonNegativeInt, agent: Schema.String, text: Schema.String },
    (fields) => {
      const event = new RunEvent.TextDelta(fields)
      const [id, name, data] = ServerSentEvents.encode(event).split("\n")
      expect([id, name]).toEqual([`id: ${fields.seq}`, "event: TextDelta"])
      expect(data).toBe(`data: ${JSON.stringify(Schema.encodeSync(RunEvent.RunEvent)(event))}`)
    },
    { fastCheck: { numRuns: 200 } }
  )

  it("encodes a batch as the UTF-8 of its frames, in order", () => {
    const events = FastCheck.sample(FastCheck.string({ unit: "binary", maxLength: 40 }), 20).map(
      (text, i) => new RunEvent.TextDelta({ runId: "r", seq: i + 1, agent: "a", text })
    )
    const bytes = ServerSentEvents.encodeAll(events)
    expect(new TextDecoder().decode(bytes)).toBe(events.map(ServerSentEvents.encode).join(""))
    expect(ServerSentEvents.encodeAll([])).toHaveLength(0)
  })

  describe("response", () => {
    const delta = (seq: number) => new RunEvent.TextDelta({ runId: "r", seq, agent: "a", text: `t${seq}` })
    const completed = (seq: number) =>
      new RunEvent.RunCompleted({
        runId: "r",
        seq,
        agent: "a",
        text: "t1t2",
        tokensUsed: 0,
        tally: { used: 0, reportedInput: 0, reportedOutput: 0, estimated: 0 }
      })
    /** The response's body, as the server writes it: each chunk decoded. */
    const bodyOf = (response: HttpServerResponse.HttpServerResponse) => {
      if (response.body._tag !== "Stream") throw new Error("expected a streamed body")
      return Stream.map(response.body.stream, (bytes) => new TextDecoder().decode(bytes))
    }

    it.scoped(
      "an interruption while the response waits for an event runs onInterrupt first, before the events are torn down",
      () =>
        Effect.gen(function* () {
          const happened: Array<string> = []
          const note = (what: string) => Effect.sync(() => void happened.push(what))
          const events = Stream.concat(Stream.make(delta(1)), Stream.never).pipe(
            Stream.ensuring(note("events torn down"))
          )
          const response = ServerSentEvents.response(events, { onInterrupt: note("onInterrupt") })
          const written = yield* Queue.unbounded<string>()
          const server = yield* bodyOf(response).pipe(
            Stream.runForEach((chunk) => Queue.offer(written, chunk)),
            Effect.fork
          )
          expect(yield* Queue.take(written)).toBe(ServerSentEvents.encode(delta(1)))
          yield* Fiber.interrupt(server)
          expect(happened).toEqual(["onInterrupt", "events torn down"])
        })
    )

    it.effect("events that end end the response after their last frame, without onInterrupt", () =>
      Effect.gen(function* () {
        let interrupts = 0
        const events = Stream.make(delta(1), delta(2), completed(3))
        const response = ServerSentEvents.response(events, {
          onInterrupt: Effect.sync(() => void interrupts++)
        })
        const text = (yield* Stream.runCollect(bodyOf(response))).pipe(Chunk.join(""))
        expect(text).toBe([delta(1), delta(2), completed(3)].map(ServerSentEvents.encode).join(""))
        expect(interrupts).toBe(0)
      })
    )

    it.effect("events ready together go out as one write", () =>
      Effect.gen(function* () {
        const events = Stream.fromIterable(Array.from({ length: 50 }, (_, i) => delta(i + 1)))
        const chunks = yield* Stream.runCollect(bodyOf(ServerSentEvents.response(events)))
        expect(chunks.length).toBeLessThan(5)
        expect(Chunk.join(chunks, "")).toBe(
          Array.from({ length: 50 }, (_, i) => ServerSentEvents.encode(delta(i + 1))).join("")
        )
      })
    )

    it.effect("a quiet stream gets a keep-alive comment every interval", () =>
      Effect.gen(function* () {
        const response = ServerSentEvents.response(Stream.never, { keepAliveInterval: "1 second" })
        const written = yield* Queue.unbounded<string>()
        yield* bodyOf(response).pipe(
          Stream.runForEach((chunk) => Queue.offer(written, chunk)),
          Effect.fork
        )
        yield* TestClock.adjust("3 seconds")
        expect(yield* Queue.takeAll(written)).toEqual(
          Chunk.make(ServerSentEvents.keepAlive, ServerSentEvents.keepAlive, ServerSentEvents.keepAlive)
        )
      })
    )

    it.effect("a defect of the events fails the response", () =>
      Effect.gen(function* () {
        const events = Stream.concat(Stream.make(delta(1)), Stream.die("boom"))
        const exit = yield* Effect.exit(Stream.runDrain(bodyOf(ServerSentEvents.response(events))))
        expect(exit).toStrictEqual(Exit.die("boom"))
      })
    )
  })

  it.effect("resumes after Last-Event-ID, else ?after=, and refuses anything but an event id", () =>
    Effect.gen(function* () {
      const resume = (url: string, headers: Record<string, string> = {}) =>
        ServerSentEvents.resumeAfter(HttpServerRequest.fromWeb(new Request(`http://localhost${url}`, { headers })))
      expect(yield* resume("/events")).toStrictEqual(Option.none())
      expect(yield* resume("/events?after=7")).toStrictEqual(Option.some(7))
      expect(yield* resume("/events?after=7", { "last-event-id": "9" })).toStrictEqual(Option.some(9))
      const bad = yield* Effect.exit(resume("/events", { "last-event-id": "-1" }))
      expect(Exit.isFailure(bad)).toBe(true)
    })
  )
})

describe("RouteError", () => {
  it("answers each refusal with its status and a JSON body naming its tag", () => {
    const cases: ReadonlyArray<[RouteError.RouteError, number]> = [
      [new RouteError.Unauthorized({ message: "m" }), 401],
      [new RouteError.Forbidden({ message: "m", sessionId: "s" }), 403],
      [new RouteError.SessionNotFound({ message: "m", sessionId: "s" }), 404],
      [new RouteError.BadRequest({ message: "m" }), 400],
      [new RouteError.InvalidBody({ message: "m", issues: [] }), 422],
      [new RouteError.PayloadTooLarge({ message: "m", limitBytes: 1 }), 413],
      [new RouteError.RequestTimeout({ message: "m", timeoutMillis: 1 }), 408],
      [new RouteError.SessionBusy({ message: "m", sessionId: "s", runId: "r" }), 409],
      [new RouteError.TooManyRuns({ message: "m", limit: 1 }), 429]
    ]
    for (const [error, status] of cases) {
      expect(RouteError.toResponse(error).status).toBe(status)
      expect(RouteError.toJson(error).error).toMatchObject({ _tag: error._tag, message: "m" })
    }
  })
})
