/**
 * The transcript of a run lost with its replica. The owner checkpoints what each of its runs added to the
 * conversation (closed: every tool call answered) on the run's row at every heartbeat; whoever ends a run it does not
 * own (the sweeper after its replica stopped heartbeating, a replica revoking a run of a session whose shard it took
 * or whose `Stop` it received) saves that checkpoint as the session's transcript. Only one can end a row, so the
 * transcript is saved once.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Message } from "@tether/core"
import type { RunRegistry, SessionStore } from "@tether/core"
import { Effect, Option } from "effect"
import type * as Fence from "../RunFence.js"

/** What a checkpointed tool call says of its stop. */
const lostWhy = "its replica was lost"

interface Tracked {
  readonly sessionId: string
  readonly historyLength: number
  /** The messages last written, as JSON (nothing is written while the run adds nothing). */
  written: string
}

/** A run's first checkpoint, written by its claim: its input message, after `historyLength` messages of history. */
export const first = (historyLength: number, message: string): Fence.RunTranscript => ({
  historyLength,
  messages: [Message.user(message)]
})

/** The checkpoints of this replica's runs. */
export interface Checkpoints {
  /** Checkpoints `runId` (claimed with `first`) at every `writeAll` until `forget`. */
  readonly track: (runId: string, sessionId: string, historyLength: number) => void
  readonly forget: (runId: string) => void
  /** Writes the checkpoint of every tracked run whose conversation changed since the last one. */
  readonly writeAll: (registry: RunRegistry.Service, fence: Fence.Service) => Effect.Effect<void, SqlError>
}

export const make = (): Checkpoints => {
  const tracked = new Map<string, Tracked>()
  return {
    track: (runId, sessionId, historyLength) => {
      tracked.set(runId, { sessionId, historyLength, written: "" })
    },
    forget: (runId) => {
      tracked.delete(runId)
    },
    writeAll: (registry, fence) =>
      Effect.forEach(
        tracked,
        ([runId, run]) =>
          Effect.gen(function* () {
            const found = yield* registry.get(run.sessionId)
            if (Option.isNone(found) || found.value.id !== runId) return
            const messages = (yield* found.value.transcriptSoFar(lostWhy)).slice(run.historyLength)
            const json = JSON.stringify(messages)
            if (json === run.written) return
            if (yield* fence.checkpoint(runId, messages)) run.written = json
          }),
        { discard: true }
      )
  }
}

/**
 * Saves the last checkpoint of `row`'s run (ended by this replica, not its owner) as its session's transcript: the
 * history the run started from, then what the run added. Nothing when the session has moved on to another run.
 */
export const saveLost = (
  store: SessionStore.Service,
  fence: Fence.Service,
  row: { readonly runId: string; readonly sessionId: string }
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const transcript = yield* fence.transcriptOf(row.runId)
    if (Option.isNone(transcript)) return
    const session = yield* store.get(row.sessionId)
    if (Option.isNone(session) || session.value.runId !== row.runId) return
    const { historyLength, messages } = transcript.value
    if (session.value.transcript.length < historyLength) return
    yield* store.save({
      ...session.value,
      transcript: [...session.value.transcript.slice(0, historyLength), ...messages]
    })
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning(`the transcript of lost run ${row.runId} was not saved`, cause))
  )

/**
 * Revokes a `running` run of any owner (`RunFence.revoke`) and, if this call ended its row, saves its last checkpoint
 * as its session's transcript (`saveLost`). The row as it was, if it was running.
 */
export const revoke = (
  store: SessionStore.Service,
  fence: Fence.Service,
  runId: string,
  reason: string
): Effect.Effect<Option.Option<Fence.RunRow>, SqlError> =>
  Effect.tap(fence.revoke(runId, reason), (revoked) =>
    Option.isSome(revoked) ? saveLost(store, fence, revoked.value) : Effect.void
  )
