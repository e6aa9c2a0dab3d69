import { HttpServerRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck, Option, Schema } from "effect"
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
