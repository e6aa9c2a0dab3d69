import { Effect, Stream } from "effect"
import * as RunEvent from "../RunEvent.js"
import type { EventCommon } from "./context.js"

/**
 * A run's events: published with a sequence number, kept in order in an array (the run's log), and replayed to
 * every reader from the first. A reader is a callback registered while its stream is read: no PubSub, whose
 * unbounded replay keeps a linked node (and a subscription's) per event, and a hub per run.
 */
export class Events {
  private seq = 0
  /** The run's log: every event, in order. */
  private readonly log: Array<RunEvent.RunEvent> = []
  /** Made with the first reader: most runs are never watched. */
  private readers: Set<(event: RunEvent.RunEvent) => void> | undefined = undefined

  constructor(
    private readonly runId: string,
    agentPath: string
  ) {
    this.publish = this.publishAs(agentPath)
  }

  // The functions a run's context carries (called off it, so they are closures, not methods). Events are built from
  // typed values, without the Schema class constructor (`event.ts`): this is a hot path, one event per streamed chunk.

  /** A (synchronous) publisher for a sub-agent at `path`, whose events carry `subRunId` (default the run's id). */
  readonly publishAs =
    (path: string, subRunId: string = this.runId) =>
    (make: (common: EventCommon) => RunEvent.RunEvent): void => {
      const event = make({ runId: subRunId, seq: ++this.seq, agent: path })
      this.log.push(event)
      if (this.readers !== undefined) for (const reader of this.readers) reader(event)
    }
  /** `emit`, synchronously (for a provider's event callback). */
  readonly publish: (make: (common: EventCommon) => RunEvent.RunEvent) => void
  readonly emit = (make: (common: EventCommon) => RunEvent.RunEvent): Effect.Effect<void> =>
    Effect.sync(() => this.publish(make))
  /** An id unique in the run, from the same sequence as the events. */
  readonly nextId = (prefix: string): string => `${prefix}_${this.runId}_${++this.seq}`

  /** Every event from the first; ends after the terminal one. */
  stream(): Stream.Stream<RunEvent.RunEvent> {
    return this.streamAfter(0)
  }

  /** The events whose `seq` is greater than `after` (the log's, then each as it is published), ending with the terminal one. */
  streamAfter(after: number): Stream.Stream<RunEvent.RunEvent> {
    return Stream.asyncPush<RunEvent.RunEvent>(
      (emit) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            let isDone = false
            const reader = (event: RunEvent.RunEvent) => {
              if (isDone) return
              if (event.seq > after) emit.single(event)
              // The stream ends with the run's terminal event, even where it is not one of those read.
              if (RunEvent.isTerminal(event)) {
                isDone = true
                emit.end()
              }
            }
            // Replayed and registered in one synchronous step: no event can fall between the two.
            for (const event of this.log) reader(event)
            if (!isDone) (this.readers ??= new Set()).add(reader)
            return reader
          }),
          (reader) => Effect.sync(() => this.readers?.delete(reader))
        ),
      { bufferSize: "unbounded" }
    )
  }
}

export const make = (runId: string, agentPath: string): Effect.Effect<Events> =>
  Effect.sync(() => new Events(runId, agentPath))
