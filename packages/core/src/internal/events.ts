import { Effect, PubSub, Stream } from "effect"
import * as RunEvent from "../RunEvent.js"
import type { EventCommon } from "./context.js"

/** A run's events: published with a sequence number, replayed to every reader from the first. */
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
  Effect.map(PubSub.unbounded<RunEvent.RunEvent>({ replay: Number.MAX_SAFE_INTEGER }), (pubsub) => {
    let seq = 0
    // Events are built from typed values, without the Schema class constructor (`event.ts`): this is a hot path,
    // one event per streamed chunk.
    const publishAs =
      (path: string, subRunId: string = runId) =>
      (make: (common: EventCommon) => RunEvent.RunEvent): void => {
        pubsub.unsafeOffer(make({ runId: subRunId, seq: ++seq, agent: path }))
      }
    const publish = publishAs(agentPath)
    const stream = () => Stream.fromPubSub(pubsub).pipe(Stream.takeUntil(RunEvent.isTerminal))
    return {
      emit: (make) => Effect.sync(() => publish(make)),
      publish,
      publishAs,
      nextId: (prefix) => `${prefix}_${runId}_${++seq}`,
      stream,
      streamAfter: (after) => stream().pipe(Stream.filter((event) => event.seq > after))
    }
  })
