/**
 * The SSE encoding of `@tether/http` before batching (as of 0.1.0), kept for the SSE scenario's comparison: every
 * event Schema-encoded into a string frame of its own, each frame UTF-8 encoded and written on its own.
 */
import { HttpServerResponse } from "@effect/platform"
import { Schedule, Schema, Stream } from "effect"
import { RunEvent } from "@tether/core"
import { ServerSentEvents } from "@tether/http"

const encodeEvent = Schema.encodeSync(RunEvent.RunEvent)

export const encode = (event: RunEvent.RunEvent): string =>
  `id: ${event.seq}\nevent: ${event._tag}\ndata: ${JSON.stringify(encodeEvent(event))}\n\n`

export const response = (events: Stream.Stream<RunEvent.RunEvent>): HttpServerResponse.HttpServerResponse => {
  const frames = Stream.map(events, encode).pipe(
    Stream.merge(
      Stream.as(Stream.fromSchedule(Schedule.spaced(ServerSentEvents.defaultKeepAliveInterval)), ":keep-alive\n\n"),
      { haltStrategy: "left" }
    ),
    Stream.encodeText
  )
  return HttpServerResponse.stream(frames, { contentType: "text/event-stream", headers: ServerSentEvents.headers })
}
