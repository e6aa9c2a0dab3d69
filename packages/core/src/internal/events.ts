import { Effect, Stream } from "effect"
import * as RunEvent from "../RunEvent.js"
import type { EventCommon } from "./context.js"

/**
 * A run's events: published with a sequence number, kept in order in an array (the run's log), and replayed to
 * every reader from the first. A reader is a callback registered while its stream is read: no PubSub, whose
 * unbounded replay keeps a linked node (and a subscription's) per event, and a hub per run.
 */
export interface Events {
  readonly emit: (make: (common: EventCommon) => RunEvent.RunEvent) => Effect.Effect<void>
  /** `emit`, synchronously (for a provider's event callback). */
  readonly publish: (make: (common: EventCommon) => RunEvent.RunEvent) => void
  /** A (synchronous) publisher for a sub-agent at `path`, whose events carry `subRunId` (default the run's id). */
  readonly publishAs: (path: string, subRunId?: string) => (make: (common: EventCommon) => RunEvent.RunEvent) => void
  /** An id unique in the run, from the same sequence as the events. */
  readonly nextId: (prefix: string) => string
  /** Every event from the first; ends after the terminal one. */
  readonly stream: () => Stream.Stream<RunEvent.RunEvent>
  /** The events whose `seq` is greater than `after`. */
  readonly streamAfter: (after: number) => Stream.Stream<RunEvent.RunEvent>
}

export const make = (runId: string, agentPath: string): Effect.Effect<Events> =>
  Effect.sync(() => {
    let seq = 0
    const log: Array<RunEvent.RunEvent> = []
    // Made with the first reader: most runs are never watched.
    let readers: Set<(event: RunEvent.RunEvent) => void> | undefined
    // Events are built from typed values, without the Schema class constructor (`event.ts`): this is a hot path,
    // one event per streamed chunk.
    const publishAs =
      (path: string, subRunId: string = runId) =>
      (make: (common: EventCommon) => RunEvent.RunEvent): void => {
        const event = make({ runId: subRunId, seq: ++seq, agent: path })
        log.push(event)
        if (readers !== undefined) for (const reader of readers) reader(event)
      }
    const publish = publishAs(agentPath)
    /** The events after `after` (the log's, then each as it is published), ending with the terminal one. */
    const streamAfter = (after: number): Stream.Stream<RunEvent.RunEvent> =>
      Stream.asyncPush<RunEvent.RunEvent>(
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
              for (const event of log) reader(event)
              if (!isDone) (readers ??= new Set()).add(reader)
              return reader
            }),
            (reader) => Effect.sync(() => readers?.delete(reader))
          ),
        { bufferSize: "unbounded" }
      )
    return {
      emit: (make) => Effect.sync(() => publish(make)),
      publish,
      publishAs,
      nextId: (prefix) => `${prefix}_${runId}_${++seq}`,
      stream: () => streamAfter(0),
      streamAfter
    }
  })
