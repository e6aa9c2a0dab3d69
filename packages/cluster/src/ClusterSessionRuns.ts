/**
 * `@tether/http`'s `SessionRuns` in cluster mode: the session routes work unchanged, and each operation is an RPC to
 * the session's entity on whichever replica owns it (`SessionEntity`). The session records (owner, disconnect
 * policy, transcript) are the `SessionStore` in context, which every replica must share (`SqlSessionStore` on the
 * cluster's database); the replica's `RunFence` holds the caller leases.
 *
 * Disconnect policy `cancel` across replicas: the replica that starts a run (the caller, holding the client's
 * connection) names itself in the `Start` and renews a caller lease on the run row while it follows the run. A client
 * that disconnects is cancelled by the route (a `Stop` to the owner); a caller replica that dies stops renewing the
 * lease, and the owner cancels the run with `ClientDisconnected` (see `SessionEntity.Options.callerStaleAfter`). With
 * `detach` there is no lease: the run goes on.
 *
 * Differences from the local `SessionRuns.layer`:
 *
 * - The agent that runs is the one the owner's `SessionEntity.layer` was given (the same on every replica); the
 *   start request's `agent` is not sent over the wire.
 * - Admission is the owner's: each replica runs at most `maxLiveRuns` runs (`SessionEntity.Options`), and a start
 *   past it is refused with `Overloaded` (503, `Retry-After`). There is no queue, and no per-caller or per-address
 *   limit yet; `checkCapacity` refuses nothing (the replica that takes a start is not the one that runs it).
 * - An outcome that crossed replicas has no `Cause`: a `Failed` outcome's cause is a defect carrying its message. A run
 *   revoked on a replica that lost the session (see `SessionEntity.Stopped`) is answered as `Cancelled` with the
 *   reason given, an empty transcript and no counts.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { SessionStore } from "@tether/core"
 * import { ClusterSessionRuns } from "@tether/cluster"
 *
 * // On each replica, instead of SessionRuns.layer(...), over the runner's Sharding and a shared store:
 * const runs = ClusterSessionRuns.layer().pipe(Layer.provideMerge(SessionStore.layerMemory()))
 * ```
 *
 * @since 0.1.0
 */
import type { Sharding } from "@effect/cluster"
import { CancelReason, RunOutcome, SessionStore, TokenBudget } from "@tether/core"
import type { RunEvent } from "@tether/core"
import { RouteError, SessionRuns } from "@tether/http"
import { Cause, Duration, Effect, FiberSet, Layer, Option, Stream } from "effect"
import type { Scope } from "effect"
import { RunFence } from "./RunFence.js"
import * as SessionEntity from "./SessionEntity.js"

const notFound = (sessionId: string) =>
  new RouteError.SessionNotFound({ sessionId, message: `no session ${sessionId}` })

const forbidden = (sessionId: string) =>
  new RouteError.Forbidden({ sessionId, message: `session ${sessionId} belongs to another caller` })

const noTally: TokenBudget.Tally = TokenBudget.emptyTally

/** The tokens of a run going on a replica that cannot be asked (it lost the session's shard). */
const unknownTokens: TokenBudget.Snapshot = {
  ceiling: 0,
  reserved: 0,
  settled: 0,
  released: 0,
  inFlight: 0,
  reservedInFlight: 0,
  used: 0,
  tally: noTally,
  estimated: false,
  exceeded: false
}

/**
 * An `Ended` that crossed replicas, as a `RunOutcome`.
 *
 * @since 0.1.0
 * @category models
 */
export const toOutcome = (ended: SessionEntity.Ended): RunOutcome.RunOutcome => {
  switch (ended._tag) {
    case "Completed":
      return RunOutcome.RunOutcome.Completed({ ...ended })
    case "Cancelled":
      return RunOutcome.RunOutcome.Cancelled({ ...ended })
    case "Failed":
      return RunOutcome.RunOutcome.Failed({ ...ended, cause: Cause.die(new Error(ended.error)) })
  }
}

const revokedOutcome = (runId: string, reason: CancelReason.CancelReason): RunOutcome.RunOutcome =>
  RunOutcome.RunOutcome.Cancelled({
    runId,
    reason,
    transcript: [],
    tokensUsed: 0,
    tokensEstimated: false,
    tally: noTally,
    writesRolledBack: 0,
    compensationsRun: 0
  })

/** The cluster's delivery failures (a full mailbox, a message already in process) are the server's, not the caller's. */
const overloaded = (message: string) => new RouteError.Overloaded({ retryAfterSeconds: 1, limit: 0, message })

/**
 * Session runs through the session entities of the cluster; the transcript followers live as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  SessionRuns.Service,
  never,
  Sharding.Sharding | SessionStore.SessionStore | RunFence | Scope.Scope
> = Effect.gen(function* () {
  const store = yield* SessionStore.SessionStore
  const fence = yield* RunFence
  const client = yield* SessionEntity.Session.client
  // One fiber per started run, on the replica that started it: it saves the run's transcript when the run ends.
  const followers = yield* FiberSet.make()

  const ownSession = ({ caller, sessionId }: SessionRuns.Who) =>
    Effect.flatMap(store.get(sessionId), (session): Effect.Effect<SessionStore.Session, SessionRuns.AccessError> => {
      if (Option.isNone(session)) return Effect.fail(notFound(sessionId))
      return session.value.owner === caller ? Effect.succeed(session.value) : Effect.fail(forbidden(sessionId))
    })

  const eventsOf = (sessionId: string, runId: string, after: Option.Option<number>): Stream.Stream<RunEvent.RunEvent> =>
    client(sessionId)
      .Attach({ runId, after: Option.getOrUndefined(after) })
      .pipe(
        // The run is gone (its replica was lost): the stream ends; the status says how the run ended.
        Stream.catchTag("NoRunError", () => Stream.empty),
        Stream.orDie
      )

  const stop = (sessionId: string, reason: CancelReason.CancelReason) =>
    Effect.map(client(sessionId).Stop({ reason }).pipe(Effect.orDie), (stopped) =>
      Option.map(stopped, (found) => ({
        runId: found.runId,
        wasRunning: found.wasRunning,
        outcome: Option.match(found.ended, {
          onNone: () => revokedOutcome(found.runId, reason),
          onSome: toOutcome
        })
      }))
    )

  /** When the run ends, its transcript becomes the session's (unless a newer run of the session started). */
  const follow = (session: SessionStore.Session, runId: string) =>
    Effect.gen(function* () {
      yield* Stream.runDrain(eventsOf(session.id, runId, Option.none()))
      const status = yield* client(session.id).Status().pipe(Effect.orDie)
      if (status._tag !== "Ended" || status.runId !== runId || Option.isNone(status.ended)) return
      const current = yield* store.get(session.id)
      if (Option.isSome(current) && current.value.runId !== runId) return
      yield* store.save({ ...session, transcript: status.ended.value.transcript, runId })
    }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("ClusterSessionRuns: transcript not saved", cause)))

  const service: SessionRuns.Service = {
    // No process-wide cap in cluster mode yet: every start goes to its session's owner, which decides.
    checkCapacity: Effect.void,
    start: (request) =>
      Effect.gen(function* () {
        const { caller, sessionId } = request
        const existing = yield* store.get(sessionId)
        if (Option.isSome(existing) && existing.value.owner !== caller) return yield* forbidden(sessionId)
        if (request.onConflict === "supersede") {
          yield* stop(sessionId, new CancelReason.Superseded())
        }
        const runId = `run_${crypto.randomUUID()}`
        const history = Option.match(existing, { onNone: () => [], onSome: (session) => session.transcript })
        const disconnect =
          request.disconnect ?? Option.match(existing, { onNone: () => "cancel" as const, onSome: (s) => s.disconnect })
        yield* client(sessionId)
          .Start({
            runId,
            owner: caller,
            message: request.message,
            history,
            timeoutMillis: request.timeout === undefined ? undefined : Duration.toMillis(request.timeout),
            tokenBudget: request.tokenBudget,
            // With `cancel`, this replica holds the run's client: the owner cancels the run if this replica dies.
            caller: disconnect === "cancel" ? fence.owner : undefined
          })
          .pipe(
            Effect.catchTags({
              SessionBusyError: (error) =>
                new RouteError.SessionBusy({
                  sessionId: error.sessionId,
                  runId: error.runId,
                  message: `session ${error.sessionId} has a run going`
                }),
              RunStoreError: (error) => new SessionStore.SessionStoreError({ message: error.message }),
              ShuttingDownError: () => overloaded(`session ${sessionId}: its replica is shutting down`),
              ReplicaFullError: (error) =>
                new RouteError.Overloaded({ retryAfterSeconds: 1, limit: error.limit, message: error.message }),
              MailboxFull: () => overloaded(`session ${sessionId}: its replica's mailbox is full`),
              AlreadyProcessingMessage: () => overloaded(`session ${sessionId}: a start is already being processed`)
            }),
            Effect.catchTag("RunIdTakenError", Effect.die),
            Effect.catchTag("PersistenceError", Effect.die)
          )
        const session: SessionStore.Session = { id: sessionId, owner: caller, disconnect, transcript: history, runId }
        // A run whose session could not be saved has nobody to stream to or stop it: it is cancelled at once.
        yield* store
          .save(session)
          .pipe(Effect.tapError(() => Effect.ignore(stop(sessionId, new CancelReason.Interrupted()))))
        // The follower holds the caller lease while the run goes on (renewed by this replica's heartbeat); a client
        // that disconnects while this replica lives is cancelled by the route, through `cancel`.
        yield* FiberSet.run(
          followers,
          disconnect === "cancel"
            ? Effect.scoped(Effect.zipRight(fence.leaseAsCaller(runId), follow(session, runId)))
            : follow(session, runId)
        )
        return {
          sessionId,
          runId,
          disconnect,
          events: eventsOf(sessionId, runId, Option.none()),
          cancel: (reason: CancelReason.CancelReason) =>
            Effect.map(stop(sessionId, reason), (stopped) =>
              Option.match(stopped, {
                onNone: () => revokedOutcome(runId, reason),
                onSome: (found) => found.outcome
              })
            )
        } satisfies SessionRuns.Started
      }),
    cancel: ({ reason, ...who }) =>
      Effect.gen(function* () {
        yield* ownSession(who)
        const stopped = yield* stop(who.sessionId, reason)
        if (Option.isNone(stopped)) return yield* notFound(who.sessionId)
        return { sessionId: who.sessionId, ...stopped.value }
      }),
    status: (who) =>
      Effect.gen(function* () {
        const session = yield* ownSession(who)
        const common = { sessionId: session.id, disconnect: session.disconnect, messages: session.transcript.length }
        const status = yield* client(session.id)
          .Status()
          .pipe(
            Effect.catchTag("RunStoreError", (error) => new SessionStore.SessionStoreError({ message: error.message })),
            Effect.orDie
          )
        switch (status._tag) {
          case "Idle":
            return { ...common, _tag: "Idle" } as const
          case "Running":
            return {
              ...common,
              _tag: "Running",
              runId: status.runId,
              tokens: Option.getOrElse(status.tokens, () => unknownTokens)
            } as const
          case "Ended": {
            const outcome = Option.match(status.ended, {
              onNone: () =>
                revokedOutcome(
                  status.runId,
                  Option.getOrElse(
                    CancelReason.decodeOption({ _tag: status.reason }),
                    (): CancelReason.CancelReason => new CancelReason.LostReplica({ owner: "unknown" })
                  )
                ),
              onSome: toOutcome
            })
            return {
              ...common,
              _tag: "Ended",
              messages: outcome.transcript.length,
              runId: status.runId,
              outcome
            } as const
          }
        }
      }),
    attach: ({ after, ...who }) =>
      Effect.gen(function* () {
        const session = yield* ownSession(who)
        if (session.runId === undefined) return yield* notFound(who.sessionId)
        return { sessionId: who.sessionId, runId: session.runId, events: eventsOf(who.sessionId, session.runId, after) }
      })
  }
  return service
})

/**
 * `SessionRuns` through the cluster, for the lifetime of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (): Layer.Layer<
  SessionRuns.SessionRuns,
  never,
  Sharding.Sharding | SessionStore.SessionStore | RunFence
> => Layer.scoped(SessionRuns.SessionRuns, make)
