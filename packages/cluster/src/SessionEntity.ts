/**
 * The session entity: one `@effect/cluster` entity per session (entity id = session id), living on the replica that
 * owns the session's shard. Its RPCs are volatile (never persisted) and run with unbounded concurrency, so a `Stop`
 * never queues behind a `Start`:
 *
 * - `Start` claims the run in PostgreSQL (`RunFence`) before it starts, then runs it in the replica's `RunRegistry`.
 *   It is idempotent by run id: a start re-sent (by the caller, or by the cluster after the owner died) answers the
 *   run that was claimed, and never runs it again. Another run of a busy session fails with `SessionBusyError`.
 * - `Stop` cancels the session's run with the given reason and answers how it ended.
 * - `Attach` streams the run's events after a sequence number (volatile: a caller that lost the stream attaches
 *   again from the last sequence number it saw).
 * - `Status` answers the session's latest run, from this replica or from the run rows.
 *
 * `layer` registers the handlers; the replica also heartbeats its runs (a run whose claim was taken away is cancelled
 * with `LostReplica`), renews the caller leases of the runs whose client it holds, cancels its runs whose caller lease
 * lapsed (`ClientDisconnected`), cancels and revokes its runs of sessions whose shard it lost, revokes other replicas'
 * runs of sessions whose shard it took (`LostReplica`), and, as a cluster singleton, sweeps the runs of replicas that
 * stopped heartbeating. At every heartbeat the owner checkpoints what each run added to the conversation on its row;
 * the replica that ends a run it does not own (a sweep, a revoke) saves that checkpoint as the session's transcript
 * in the `SessionStore`, so a session whose run was lost continues from it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CancelReason } from "@tether/core"
 * import { SessionEntity } from "@tether/cluster"
 *
 * // On any replica:
 * const stop = (sessionId: string) =>
 *   Effect.gen(function* () {
 *     const client = yield* SessionEntity.Session.client
 *     return yield* client(sessionId).Stop({ reason: new CancelReason.UserAbort() })
 *   })
 * ```
 *
 * @since 0.1.0
 */
import { Entity, EntityId, Sharding, Singleton } from "@effect/cluster"
import { Rpc } from "@effect/rpc"
import type { SqlError } from "@effect/sql/SqlError"
import { CancelReason, Message, RunEvent, RunRegistry, SessionStore, TokenBudget } from "@tether/core"
import { Auth } from "@tether/http"
import type { Agent, AgentRun, LanguageModel, RunOutcome } from "@tether/core"
import { Cause, Duration, Effect, FiberSet, Layer, Option, Ref, Schedule, Schema, Stream } from "effect"
import { RunFence } from "./RunFence.js"
import * as Fence from "./RunFence.js"
import * as Checkpoints from "./internal/checkpoints.js"

/**
 * The run rows could not be read or written (PostgreSQL unreachable, say): nothing was started.
 *
 * @since 0.1.0
 * @category errors
 */
export class RunStoreError extends Schema.TaggedError<RunStoreError>()("RunStoreError", {
  message: Schema.String
}) {}

/**
 * The session's replica is shutting down: it starts no new run. Retry: the session moves to another replica once this
 * one has released its shards.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShuttingDownError extends Schema.TaggedError<ShuttingDownError>()("ShuttingDownError", {
  sessionId: Schema.String,
  message: Schema.String
}) {}

/**
 * The session's replica runs as many runs as it may (`Options.maxLiveRuns`): nothing was started. Retry later.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReplicaFullError extends Schema.TaggedError<ReplicaFullError>()("ReplicaFullError", {
  sessionId: Schema.String,
  limit: Schema.Number,
  message: Schema.String
}) {}

/**
 * The session has no run this replica can attach to.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoRunError extends Schema.TaggedError<NoRunError>()("NoRunError", {
  sessionId: Schema.String,
  message: Schema.String
}) {}

/**
 * How a run ended, as it crosses replicas: `RunOutcome` without its `Cause`.
 *
 * @since 0.1.0
 * @category models
 */
export const Ended = Schema.Union(
  Schema.TaggedStruct("Completed", {
    runId: Schema.String,
    text: Schema.String,
    transcript: Schema.Array(Message.Message),
    tokensUsed: Schema.Number,
    tally: TokenBudget.Tally,
    writesCommitted: Schema.Number
  }),
  Schema.TaggedStruct("Cancelled", {
    runId: Schema.String,
    reason: CancelReason.CancelReason,
    transcript: Schema.Array(Message.Message),
    tokensUsed: Schema.Number,
    tokensEstimated: Schema.Boolean,
    tally: TokenBudget.Tally,
    writesRolledBack: Schema.Number,
    compensationsRun: Schema.Number
  }),
  Schema.TaggedStruct("Failed", {
    runId: Schema.String,
    error: Schema.String,
    transcript: Schema.Array(Message.Message),
    tokensUsed: Schema.Number,
    tally: TokenBudget.Tally,
    writesRolledBack: Schema.Number,
    compensationsRun: Schema.Number
  })
)

/** @since 0.1.0 */
export type Ended = typeof Ended.Type

/**
 * A `RunOutcome` as `Ended` (a failure keeps its message, not its `Cause`).
 *
 * @since 0.1.0
 * @category models
 */
export const fromOutcome = (outcome: RunOutcome.RunOutcome): Ended => {
  switch (outcome._tag) {
    case "Completed":
      return { ...outcome, _tag: "Completed" }
    case "Cancelled":
      return { ...outcome, _tag: "Cancelled" }
    case "Failed": {
      const { cause: _cause, ...rest } = outcome
      return { ...rest, _tag: "Failed" }
    }
  }
}

/**
 * What `Start` answers: the run, and whether this start was a re-sent one (the run id was already claimed, and the
 * run was not started again).
 *
 * @since 0.1.0
 * @category models
 */
export class Started extends Schema.Class<Started>("@tether/cluster/Started")({
  sessionId: Schema.String,
  runId: Schema.String,
  isResent: Schema.Boolean
}) {}

/**
 * What `Stop` answers: the run it found, whether it was still going, and how it ended. `ended` is `None` when the run
 * was going on a replica that no longer owns the session (its shard moved): the run was revoked in its row (it can no
 * longer commit) and its replica cancels it at its next heartbeat, with the Stop's reason.
 *
 * @since 0.1.0
 * @category models
 */
export class Stopped extends Schema.Class<Stopped>("@tether/cluster/Stopped")({
  runId: Schema.String,
  wasRunning: Schema.Boolean,
  ended: Schema.OptionFromNullOr(Ended)
}) {}

/**
 * A run's token ledger (`TokenBudget.Snapshot`), as it crosses replicas.
 *
 * @since 0.1.0
 * @category models
 */
export const TokenSnapshot = Schema.Struct({
  ceiling: Schema.Number,
  reserved: Schema.Number,
  settled: Schema.Number,
  released: Schema.Number,
  inFlight: Schema.Number,
  reservedInFlight: Schema.Number,
  used: Schema.Number,
  tally: TokenBudget.Tally,
  estimated: Schema.Boolean,
  exceeded: Schema.Boolean
})

/**
 * A session's status: no run known (`Idle`), its latest run going (`Running`, with the replica that owns it) or ended
 * (`Ended`: `reason` from the run row; `ended` when the replica that ran it still knows how).
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Union(
  Schema.TaggedStruct("Idle", { sessionId: Schema.String }),
  Schema.TaggedStruct("Running", {
    sessionId: Schema.String,
    runId: Schema.String,
    owner: Schema.String,
    /** The run's tokens, when the replica answering runs it. */
    tokens: Schema.OptionFromNullOr(TokenSnapshot)
  }),
  Schema.TaggedStruct("Ended", {
    sessionId: Schema.String,
    runId: Schema.String,
    reason: Schema.String,
    ended: Schema.OptionFromNullOr(Ended)
  })
)

/** @since 0.1.0 */
export type Status = typeof Status.Type

/**
 * The session entity's protocol.
 *
 * @since 0.1.0
 * @category entity
 */
export const Session = Entity.make("TetherSession", [
  Rpc.make("Start", {
    payload: {
      runId: Schema.String,
      /**
       * Who the run acts for: the session's owner, as the route that started it authenticated them. The run's
       * `Auth.CurrentCaller`, as in a single process.
       */
      owner: SessionStore.CallerId,
      message: Schema.String,
      history: Schema.optional(Schema.Array(Message.Message)),
      timeoutMillis: Schema.optional(Schema.Number),
      tokenBudget: Schema.optional(Schema.Number),
      /**
       * The replica holding the run's client (its `RunFence` owner id), for the `cancel` disconnect policy: the run is
       * cancelled with `ClientDisconnected` once that replica stops renewing its caller lease (`RunFence.leaseAsCaller`).
       */
      caller: Schema.optional(Schema.String)
    },
    success: Started,
    error: Schema.Union(
      RunRegistry.SessionBusyError,
      Fence.RunIdTakenError,
      RunStoreError,
      ShuttingDownError,
      ReplicaFullError
    )
  }),
  Rpc.make("Stop", {
    payload: { reason: CancelReason.CancelReason },
    success: Schema.OptionFromNullOr(Stopped)
  }),
  Rpc.make("Attach", {
    payload: { runId: Schema.optional(Schema.String), after: Schema.optional(Schema.Number) },
    success: RunEvent.RunEvent,
    error: NoRunError,
    stream: true
  }),
  Rpc.make("Status", { success: Status, error: RunStoreError })
])

/** @since 0.1.0 */
export interface Options<R> {
  /**
   * The agent every run of a session runs. Its tools find the caller the run acts for in `Auth.CurrentCaller` (the
   * `Start`'s `owner`), as in a single process.
   */
  readonly agent: Agent.Agent<R>
  /** Cancel-deadline and leak options of every run (see `AgentRun.RunOptions`). */
  readonly cancelDeadline?: Duration.DurationInput | undefined
  /** How often this replica refreshes the heartbeat of its runs. Default 1 second. */
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  /**
   * A run whose heartbeat is older than this is ended `LostReplica` by the sweeper. Default 5 seconds: with the
   * failover timings of `ClusterConfig`, a lost replica's runs are ended within about 6 s.
   */
  readonly staleAfter?: Duration.DurationInput | undefined
  /**
   * A run started with a `caller` is cancelled with `ClientDisconnected` once its caller's lease is older than this
   * (the caller's replica died or was cut off). Default 3 seconds: the lease is renewed every `heartbeatInterval` and
   * checked as often, so such a run is cancelled within about `callerStaleAfter` + 2 × `heartbeatInterval`.
   */
  readonly callerStaleAfter?: Duration.DurationInput | undefined
  /**
   * When the layer closes (the replica shuts down: SIGTERM under `NodeRuntime.runMain`), the replica stops starting
   * runs, cancels its runs with `Shutdown` and records their end in their rows, waiting at most this long (default
   * 10 seconds); what is left then is ended `LostReplica` by the sweep. It comes before the engine's own shutdown
   * (`entityTerminationTimeout`), which then finds no run to wait for.
   */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /**
   * The most runs this replica runs at once, as the owner of their sessions; a `Start` past it fails with
   * `ReplicaFullError` (503 with `Retry-After` through `ClusterSessionRuns`). Default 25, the default of a single
   * process (`SessionRuns.defaults.maxLiveRuns` of `@tether/http`).
   */
  readonly maxLiveRuns?: number | undefined
  /** How long an idle entity stays in memory (its runs live in the registry, not in the entity). Default 5 minutes. */
  readonly maxIdleTime?: Duration.DurationInput | undefined
}

const storeError = (error: SqlError) => new RunStoreError({ message: `the run rows: ${error.message}` })

/** The `reason` a run row keeps of an outcome: `Completed`, `Failed` or the cancel reason's tag. */
const rowReason = (outcome: RunOutcome.RunOutcome): string =>
  outcome._tag === "Cancelled" ? outcome.reason._tag : outcome._tag

/**
 * The handlers of the session entity on this replica, the heartbeat of its runs and the sweeper (a cluster singleton).
 * Needs the replica's `RunRegistry` and `RunFence`, the `LanguageModel`, the `StagedWrites` the runs commit
 * through (provide `RunFence.layerStagedWrites` so that their commits are fenced), and the `SessionStore` every
 * replica shares (where a lost run's transcript is saved).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R>(
  options: Options<R>
): Layer.Layer<
  never,
  never,
  | Sharding.Sharding
  | RunRegistry.RunRegistry
  | RunFence
  | SessionStore.SessionStore
  | LanguageModel.LanguageModel
  | Exclude<R, Auth.CurrentCaller>
> => {
  const heartbeatInterval = options.heartbeatInterval ?? Duration.seconds(1)
  const staleAfter = options.staleAfter ?? Duration.seconds(5)
  const callerStaleAfter = options.callerStaleAfter ?? Duration.seconds(3)
  const drainTimeout = options.drainTimeout ?? Duration.seconds(10)

  const maxLiveRuns = options.maxLiveRuns ?? 25

  const handlers = (
    watchers: FiberSet.FiberSet,
    draining: Ref.Ref<boolean>,
    checkpoints: Checkpoints.Checkpoints,
    places: Places
  ) =>
    Session.toLayer(
      Effect.gen(function* () {
        const address = yield* Entity.CurrentAddress
        const sessionId = address.entityId
        const registry = yield* RunRegistry.RunRegistry
        const fence = yield* RunFence
        const store = yield* SessionStore.SessionStore
        const starts = yield* Effect.makeSemaphore(1)

        const localRun = (runId?: string) =>
          Effect.map(
            registry.get(sessionId),
            Option.filter((run: AgentRun.AgentRun) => runId === undefined || run.id === runId)
          )

        const start = (payload: StartPayload) =>
          starts.withPermits(1)(
            Effect.gen(function* () {
              const { runId } = payload
              if (Option.isSome(yield* localRun(runId))) return new Started({ sessionId, runId, isResent: true })
              if (yield* Ref.get(draining)) {
                return yield* new ShuttingDownError({ sessionId, message: `replica ${fence.owner} is shutting down` })
              }
              // A place for the run, taken before the claim: given back when the run ends, or now if none starts.
              if (!places.take()) {
                return yield* new ReplicaFullError({
                  sessionId,
                  limit: maxLiveRuns,
                  message: `replica ${fence.owner} runs ${maxLiveRuns} runs, as many as it may`
                })
              }
              let isPlaceHanded = false
              return yield* Effect.ensuring(
                launch(payload, () => (isPlaceHanded = true)),
                Effect.sync(() => {
                  if (!isPlaceHanded) places.give()
                })
              )
            })
          )

        /** Claims and starts the run; `handPlace` is called once its watcher holds the run's place. */
        const launch = (payload: StartPayload, handPlace: () => void) =>
          Effect.gen(function* () {
            const { runId } = payload
            const historyLength = payload.history?.length ?? 0
            const claim = yield* Effect.mapError(
              fence.claim({
                sessionId,
                runId,
                caller: payload.caller,
                transcript: Checkpoints.first(historyLength, payload.message)
              }),
              (error) => (error._tag === "SqlError" ? storeError(error) : error)
            )
            if (claim._tag === "Existing") return new Started({ sessionId, runId, isResent: true })
            const input =
              payload.history === undefined ? payload.message : { history: payload.history, message: payload.message }
            const run = yield* registry
              .start(sessionId, options.agent, input, {
                runId,
                onConflict: "refuse",
                timeout: payload.timeoutMillis,
                tokenBudget: payload.tokenBudget,
                cancelDeadline: options.cancelDeadline
              })
              .pipe(
                Effect.provideService(Auth.CurrentCaller, payload.owner),
                Effect.tapError(() => Effect.ignore(fence.end(runId, "Refused")))
              )
            checkpoints.track(runId, sessionId, historyLength)
            yield* FiberSet.run(
              watchers,
              Effect.flatMap(run.outcome, (outcome) =>
                Effect.zipRight(
                  Effect.sync(() => {
                    checkpoints.forget(runId)
                    places.give()
                  }),
                  fence
                    .end(runId, rowReason(outcome))
                    .pipe(
                      Effect.retry(Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(5)))),
                      Effect.ignoreLogged
                    )
                )
              )
            )
            handPlace()
            return new Started({ sessionId, runId, isResent: false })
          })

        return Session.of({
          Start: (envelope) => start(envelope.payload),
          Stop: (envelope) =>
            Effect.gen(function* () {
              const { reason } = envelope.payload
              const found = yield* localRun()
              const stopLocal = (run: AgentRun.AgentRun, wasRunning: boolean) =>
                Effect.map(run.cancel(reason), (outcome) =>
                  Option.some(new Stopped({ runId: run.id, wasRunning, ended: Option.some(fromOutcome(outcome)) }))
                )
              // The common case first, with no query: the run goes on here.
              if (Option.isSome(found) && Option.isNone(yield* found.value.poll))
                return yield* stopLocal(found.value, true)
              // The session's run may go on elsewhere (the replica that started it lost the session's shard): revoked.
              // A database that cannot be read leaves only what this replica knows.
              const row = yield* Effect.orElseSucceed(fence.active(sessionId), () => Option.none<Fence.RunRow>())
              if (Option.isSome(row) && row.value.owner !== fence.owner && row.value.status === "running") {
                const revoked = yield* Effect.orElseSucceed(
                  Checkpoints.revoke(store, fence, row.value.runId, reason._tag),
                  () => Option.none<Fence.RunRow>()
                )
                if (Option.isSome(revoked)) {
                  return Option.some(new Stopped({ runId: row.value.runId, wasRunning: true, ended: Option.none() }))
                }
              }
              return Option.isSome(found) ? yield* stopLocal(found.value, false) : Option.none()
            }),
          Attach: (envelope) =>
            Stream.unwrap(
              Effect.map(localRun(envelope.payload.runId), (found) =>
                Option.match(found, {
                  onNone: () =>
                    Stream.fail(
                      new NoRunError({
                        sessionId,
                        message: `session ${sessionId} has no ${envelope.payload.runId === undefined ? "" : `run ${envelope.payload.runId} `}on this replica`
                      })
                    ),
                  onSome: (run) =>
                    envelope.payload.after === undefined ? run.events : run.eventsAfter(envelope.payload.after)
                })
              )
            ),
          Status: () =>
            Effect.gen(function* () {
              const found = yield* localRun()
              if (Option.isSome(found)) {
                const run = found.value
                const outcome = yield* run.poll
                const tokens = yield* run.tokens
                return Option.match(outcome, {
                  onNone: (): Status => ({
                    _tag: "Running",
                    sessionId,
                    runId: run.id,
                    owner: fence.owner,
                    tokens: Option.some(tokens)
                  }),
                  onSome: (ended): Status => ({
                    _tag: "Ended",
                    sessionId,
                    runId: run.id,
                    reason: rowReason(ended),
                    ended: Option.some(fromOutcome(ended))
                  })
                })
              }
              const latest = yield* Effect.mapError(fence.latest(sessionId), storeError)
              return Option.match(latest, {
                onNone: (): Status => ({ _tag: "Idle", sessionId }),
                onSome: (row): Status =>
                  row.status === "ended"
                    ? {
                        _tag: "Ended",
                        sessionId,
                        runId: row.runId,
                        reason: row.reason ?? "Ended",
                        ended: Option.none()
                      }
                    : { _tag: "Running", sessionId, runId: row.runId, owner: row.owner, tokens: Option.none() }
              })
            })
        })
      }),
      { concurrency: "unbounded", maxIdleTime: options.maxIdleTime ?? Duration.minutes(5) }
    )

  // The replica's heartbeat: a claim taken away (swept while this replica was partitioned, say) cancels its run; so
  // does a caller lease that lapsed (the replica holding the run's client is gone: the `cancel` disconnect policy).
  // Shard ownership: a run here whose session's shard this replica no longer holds (its lock connection was cut, the
  // shard moved) is revoked and cancelled; a run of another replica on a session whose shard this replica now holds is
  // revoked (its replica, if alive, cancels it at its own next heartbeat). Either way the run can no longer commit.
  const heartbeat = (checkpoints: Checkpoints.Checkpoints) =>
    Layer.scopedDiscard(
      Effect.gen(function* () {
        const registry = yield* RunRegistry.RunRegistry
        const fence = yield* RunFence
        const store = yield* SessionStore.SessionStore
        const sharding = yield* Sharding.Sharding
        const holdsSession = (sessionId: string) =>
          Effect.map(Session.getShardId(EntityId.make(sessionId)), (shardId) => sharding.hasShardId(shardId))
        const lostReplica = new CancelReason.LostReplica({ owner: fence.owner })
        const checkShards = Effect.gen(function* () {
          // A replica shutting down holds no shard: its runs end with `Shutdown` (the layer's finalizer), not here.
          if (yield* sharding.isShutdown) return
          for (const sessionId of yield* registry.running) {
            if (yield* holdsSession(sessionId)) continue
            const run = yield* registry.get(sessionId)
            if (Option.isNone(run)) continue
            yield* run.value.requestCancel(lostReplica)
            yield* Checkpoints.revoke(store, fence, run.value.id, lostReplica._tag)
          }
          for (const row of yield* fence.runningElsewhere) {
            if (yield* holdsSession(row.sessionId)) yield* Checkpoints.revoke(store, fence, row.runId, lostReplica._tag)
          }
        })
        const cancelRun = (sessionId: string, runId: string, reason: CancelReason.CancelReason) =>
          Effect.flatMap(registry.get(sessionId), (run) =>
            Option.isSome(run) && run.value.id === runId ? run.value.requestCancel(reason) : Effect.void
          )
        const beat = Effect.gen(function* () {
          const lost = yield* fence.heartbeat
          for (const { reason, runId, sessionId } of lost) {
            // The reason of a revoke (a Stop that reached the session's new owner), else the replica was presumed lost.
            const why = Option.getOrElse(
              CancelReason.decodeOption({ _tag: reason }),
              (): CancelReason.CancelReason => new CancelReason.LostReplica({ owner: fence.owner })
            )
            yield* cancelRun(sessionId, runId, why)
          }
          for (const { runId, sessionId } of yield* fence.callersLost(callerStaleAfter)) {
            yield* cancelRun(sessionId, runId, new CancelReason.ClientDisconnected())
          }
          yield* checkpoints.writeAll(registry, fence)
          yield* checkShards
        })
        yield* Effect.forkScoped(
          // The first beat one interval after start (a replica starting has no run to beat for).
          beat.pipe(
            Effect.catchAllCause((cause) => Effect.logDebug("RunFence heartbeat failed", Cause.pretty(cause))),
            Effect.schedule(Schedule.spaced(heartbeatInterval))
          )
        )
      })
    )

  // One sweeper in the cluster: it ends the runs of replicas that stopped heartbeating and saves their transcripts.
  const sweeper = Singleton.make(
    "TetherRunSweeper",
    Effect.gen(function* () {
      const fence = yield* RunFence
      const store = yield* SessionStore.SessionStore
      const sweep = Effect.flatMap(fence.sweep(staleAfter), (swept) =>
        swept.length === 0
          ? Effect.void
          : Effect.zipRight(
              Effect.forEach(swept, (row) => Checkpoints.saveLost(store, fence, row), { discard: true }),
              Effect.logDebug(
                `ended ${swept.length} run(s) of lost replicas`,
                swept.map((row) => row.runId)
              )
            )
      )
      yield* sweep.pipe(
        Effect.catchAllCause((cause) => Effect.logDebug("RunFence sweep failed", Cause.pretty(cause))),
        Effect.repeat(Schedule.spaced(heartbeatInterval))
      )
    })
  )

  return Layer.unwrapScoped(
    Effect.gen(function* () {
      // Watchers of the runs: each records its run's end in the run row. They belong to the replica, not to an
      // entity: a run outlives an idle entity that is reaped.
      const watchers = yield* FiberSet.make()
      const draining = yield* Ref.make(false)
      // The drain, closed before the watchers (finalizers run in reverse) and before the engine's runner (built
      // earlier): no new run starts here, the runs end with `Shutdown` and their rows say so, within the deadline.
      const registry = yield* RunRegistry.RunRegistry
      yield* Effect.addFinalizer(() =>
        Ref.set(draining, true).pipe(
          Effect.zipRight(registry.cancelAll(new CancelReason.Shutdown())),
          Effect.zipRight(FiberSet.awaitEmpty(watchers)),
          Effect.timeout(drainTimeout),
          Effect.catchAllCause((cause) =>
            Effect.logWarning("SessionEntity: the drain did not finish", Cause.pretty(cause))
          )
        )
      )
      // The checkpoints of this replica's runs: written by the heartbeat, read when a run is lost.
      const checkpoints = Checkpoints.make()
      return Layer.mergeAll(
        handlers(watchers, draining, checkpoints, makePlaces(maxLiveRuns)),
        heartbeat(checkpoints),
        sweeper
      )
    })
  )
}

/** The places for runs on this replica: plain counters, each change one synchronous step. */
interface Places {
  /** Takes a place if one is free. */
  readonly take: () => boolean
  readonly give: () => void
}

const makePlaces = (max: number): Places => {
  let live = 0
  return {
    take: () => (live < max ? (live++, true) : false),
    give: () => {
      live--
    }
  }
}

interface StartPayload {
  readonly runId: string
  readonly owner: SessionStore.CallerId
  readonly message: string
  readonly history?: ReadonlyArray<Message.Message> | undefined
  readonly timeoutMillis?: number | undefined
  readonly tokenBudget?: number | undefined
  readonly caller?: string | undefined
}
