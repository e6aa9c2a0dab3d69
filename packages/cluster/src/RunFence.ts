/**
 * The run rows of cluster mode, in PostgreSQL: one row per run (session, run id, epoch, owner, status, heartbeat,
 * reason). A run is claimed before it starts, at most once per run id and at most one running run per session; its
 * commit is fenced (`checkCommit`, run inside the staged-writes commit transaction) so that a run whose owner lost it
 * can never commit; the owner heartbeats its rows, and a sweep ends the rows whose owner stopped heartbeating, with
 * `CancelReason.LostReplica`, and never restarts them.
 *
 * Times (heartbeats, the sweep's bound) are the database's clock, so replicas' clocks do not matter.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RunFence } from "@tether/cluster"
 *
 * const program = Effect.gen(function* () {
 *   const fence = yield* RunFence.RunFence
 *   const claim = yield* fence.claim({ sessionId: "s-1", runId: "r-1" })
 *   // claim._tag === "Claimed": start the run; "Existing": it was claimed before, never run it again
 *   return claim._tag
 * })
 * // provided with RunFence.layer({ prefix: "tether_cluster", owner: "10.0.0.7:34431" }) over a PgClient
 * ```
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Message, RunRegistry, StagedWrites } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import { Context, Data, Duration, Effect, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"

/** @since 0.1.0 */
export interface Options {
  /** The prefix of the table: `{prefix}_runs`. Default `"tether_cluster"`. */
  readonly prefix?: string | undefined
  /** This replica's owner id, written on the rows it claims. Unique per process: a restarted replica is a new owner. */
  readonly owner: string
}

/**
 * What a run row says. `running`: claimed, its owner working on it; `committed`: its writes were applied, it is
 * finishing; `ended`: done (`reason` says how: `Completed`, `Failed` or a `CancelReason` tag).
 *
 * @since 0.1.0
 * @category models
 */
export interface RunRow {
  readonly runId: string
  readonly sessionId: string
  readonly epoch: number
  readonly owner: string
  readonly status: "running" | "committed" | "ended"
  readonly reason: string | undefined
}

/**
 * The outcome of a claim: `Claimed` (this replica now owns the run at `epoch`: start it), or `Existing` (the run id
 * was claimed before: by a start that was re-sent, on this replica or a lost one; never run it again).
 *
 * @since 0.1.0
 * @category models
 */
export type ClaimResult = Data.TaggedEnum<{
  Claimed: { readonly epoch: number }
  Existing: { readonly row: RunRow }
}>

/**
 * Constructors of `ClaimResult`.
 *
 * @since 0.1.0
 * @category models
 */
export const ClaimResult = Data.taggedEnum<ClaimResult>()

/**
 * A claim this replica held and lost: its row was ended by someone else (`reason`: `LostReplica` after a sweep, or
 * the reason of a `revoke`), or fenced at a new epoch.
 *
 * @since 0.1.0
 * @category models
 */
export interface LostClaim {
  readonly runId: string
  readonly sessionId: string
  readonly reason: string | undefined
}

/**
 * What a run row knows of its run's conversation: the messages the run added after its history (`historyLength`
 * messages it was started with), as its owner last checkpointed them, closed (every tool call answered).
 *
 * @since 0.1.0
 * @category models
 */
export interface RunTranscript {
  readonly historyLength: number
  readonly messages: ReadonlyArray<Message.Message>
}

/**
 * The run id is already the id of a run of another session.
 *
 * @since 0.1.0
 * @category errors
 */
export class RunIdTakenError extends Schema.TaggedError<RunIdTakenError>()("RunIdTakenError", {
  runId: Schema.String,
  sessionId: Schema.String
}) {}

/** @since 0.1.0 */
export interface Service {
  /** This replica's owner id. */
  readonly owner: string
  /** The table's name. */
  readonly table: string
  /**
   * Claims `runId` for `sessionId`, at epoch 1, owned by this replica. Idempotent by run id (a claimed run id returns
   * `Existing`); fails with `SessionBusyError` when another run of the session is not ended.
   */
  readonly claim: (options: {
    readonly sessionId: string
    readonly runId: string
    /**
     * The replica that holds the run's client (the caller), when the run must be cancelled once that replica stops
     * renewing its lease (`leaseAsCaller`): the session's `cancel` disconnect policy. The lease starts at the claim.
     */
    readonly caller?: string | undefined
    /** The run's first checkpoint (its input message), so that a run lost before its owner's first one has it. */
    readonly transcript?: RunTranscript | undefined
  }) => Effect.Effect<ClaimResult, RunRegistry.SessionBusyError | RunIdTakenError | SqlError>
  /**
   * Saves what the run added to its conversation so far on its row, while the row is this replica's `running` claim
   * (a lost claim's row keeps its last checkpoint). Returns whether it was saved.
   */
  readonly checkpoint: (runId: string, messages: ReadonlyArray<Message.Message>) => Effect.Effect<boolean, SqlError>
  /** The run's last checkpoint (none for a row claimed without one, or one that cannot be read back). */
  readonly transcriptOf: (runId: string) => Effect.Effect<Option.Option<RunTranscript>, SqlError>
  /**
   * The check of `SqlStagedWrites`' `beforeCommit`, inside the commit's transaction: the row must be this replica's
   * claim, at the epoch it claimed, still `running`; it becomes `committed` in the same transaction. Otherwise
   * `CommitFencedError`, and the transaction rolls back.
   */
  readonly checkCommit: (runId: string) => Effect.Effect<void, StagedWrites.CommitFencedError | SqlError>
  /** Marks this replica's run ended with `reason` (if it is still this replica's claim) and forgets the claim. */
  readonly end: (runId: string, reason: string) => Effect.Effect<void, SqlError>
  /**
   * Refreshes the heartbeat of every row this replica owns and has not ended, and the caller lease of every run this
   * replica holds as its caller (`leaseAsCaller`); returns the claims it held that are no longer its own (swept, or
   * fenced at a new epoch): their runs must stop, they can no longer commit.
   */
  readonly heartbeat: Effect.Effect<ReadonlyArray<LostClaim>, SqlError>
  /**
   * Ends a `running` run of any owner with `reason` and bumps its epoch, so that it can no longer commit; its owner,
   * if alive, learns it at its next heartbeat. For a `Stop` that reaches the session's entity on a replica that is not
   * the run's owner (the shard moved while the run went on). Returns the row as it was, if it was running.
   */
  readonly revoke: (runId: string, reason: string) => Effect.Effect<Option.Option<RunRow>, SqlError>
  /**
   * Ends every row not ended whose heartbeat is older than `staleAfter`: a `running` one with `LostReplica`, a
   * `committed` one (its writes landed) with `Completed`; bumps their epoch. Returns the rows as they were before.
   * Safe to run on several replicas at once.
   */
  readonly sweep: (staleAfter: Duration.DurationInput) => Effect.Effect<ReadonlyArray<RunRow>, SqlError>
  /**
   * This replica holds the client of `runId` (claimed with `caller` = this replica's owner id): its caller lease is
   * renewed at every `heartbeat` until the scope closes. A replica that dies stops renewing it.
   */
  readonly leaseAsCaller: (runId: string) => Effect.Effect<void, never, Scope.Scope>
  /**
   * This replica's `running` runs whose caller lease is older than `staleAfter`: their caller's replica is gone (or cut
   * off), and their client with it.
   */
  readonly callersLost: (
    staleAfter: Duration.DurationInput
  ) => Effect.Effect<
    ReadonlyArray<{ readonly runId: string; readonly sessionId: string; readonly caller: string }>,
    SqlError
  >
  /** The `running` runs of other replicas (the new owner of a session revokes those of the sessions it now holds). */
  readonly runningElsewhere: Effect.Effect<ReadonlyArray<RunRow>, SqlError>
  /** The row of `runId`. */
  readonly get: (runId: string) => Effect.Effect<Option.Option<RunRow>, SqlError>
  /** The session's run that is not ended, if any. */
  readonly active: (sessionId: string) => Effect.Effect<Option.Option<RunRow>, SqlError>
  /** The session's latest run (the last claimed), ended or not. */
  readonly latest: (sessionId: string) => Effect.Effect<Option.Option<RunRow>, SqlError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RunFence extends Context.Tag("@tether/cluster/RunFence")<RunFence, Service>() {}

/** @since 0.1.0 */
export const defaultPrefix = "tether_cluster"

const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,56}$/

interface Row {
  readonly run_id: string
  readonly session_id: string
  readonly epoch: number
  readonly owner: string
  readonly status: RunRow["status"]
  readonly reason: string | null
}

const MessagesJson = Schema.parseJson(Schema.Array(Message.Message))
const encodeMessages = Schema.encodeSync(MessagesJson)
const decodeMessages = Schema.decodeUnknownOption(MessagesJson)

const toRunRow = (row: Row): RunRow => ({
  runId: row.run_id,
  sessionId: row.session_id,
  epoch: Number(row.epoch),
  owner: row.owner,
  status: row.status,
  reason: row.reason ?? undefined
})

/**
 * Builds the service on the `SqlClient` in context (PostgreSQL) and creates its table if missing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Service, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const prefix = options.prefix ?? defaultPrefix
    if (!identifier.test(prefix)) {
      return yield* Effect.dieMessage(`@tether/cluster: "${prefix}" is not a valid table prefix`)
    }
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const table = `${prefix}_runs`
    const owner = options.owner
    yield* sql
      .withTransaction(
        Effect.zipRight(
          sql`SELECT pg_advisory_xact_lock(hashtext(${`tether:${table}`}))`,
          Effect.zipRight(
            sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
              run_id text PRIMARY KEY,
              session_id text NOT NULL,
              epoch integer NOT NULL,
              owner text NOT NULL,
              status text NOT NULL,
              reason text,
              heartbeat timestamptz NOT NULL DEFAULT now(),
              started_at timestamptz NOT NULL DEFAULT now(),
              ended_at timestamptz,
              caller text,
              caller_heartbeat timestamptz,
              history_length integer,
              messages jsonb
            )`,
            Effect.zipRight(
              sql`CREATE UNIQUE INDEX IF NOT EXISTS ${sql(`${table}_active`)} ON ${sql(table)} (session_id)
                WHERE status <> 'ended'`,
              // A table made before caller leases or checkpoints existed.
              sql`ALTER TABLE ${sql(table)} ADD COLUMN IF NOT EXISTS caller text,
                ADD COLUMN IF NOT EXISTS caller_heartbeat timestamptz,
                ADD COLUMN IF NOT EXISTS history_length integer,
                ADD COLUMN IF NOT EXISTS messages jsonb`
            )
          )
        )
      )
      .pipe(Effect.asVoid)

    // The claims this replica holds, by run id.
    const claims = new Map<string, { readonly epoch: number; readonly sessionId: string }>()
    // The runs this replica holds the client of (their caller leases), by run id, with how many holders.
    const calling = new Map<string, number>()

    const get = (runId: string) =>
      Effect.map(
        sql<Row>`SELECT run_id, session_id, epoch, owner, status, reason FROM ${sql(table)} WHERE run_id = ${runId}`,
        (rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)
      )
    const active = (sessionId: string) =>
      Effect.map(
        sql<Row>`SELECT run_id, session_id, epoch, owner, status, reason FROM ${sql(table)}
          WHERE session_id = ${sessionId} AND status <> 'ended'`,
        (rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)
      )
    const latest = (sessionId: string) =>
      Effect.map(
        sql<Row>`SELECT run_id, session_id, epoch, owner, status, reason FROM ${sql(table)}
          WHERE session_id = ${sessionId} ORDER BY started_at DESC, run_id DESC LIMIT 1`,
        (rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)
      )

    const claimOnce = (
      sessionId: string,
      runId: string,
      caller: string | null,
      historyLength: number | null,
      messages: string | null
    ) =>
      Effect.gen(function* () {
        // One statement: the primary key makes it once per run id, the partial unique index once per session.
        const inserted = yield* sql<{
          epoch: number
        }>`INSERT INTO ${sql(table)}
            (run_id, session_id, epoch, owner, status, caller, caller_heartbeat, history_length, messages)
          VALUES (${runId}, ${sessionId}, 1, ${owner}, 'running', ${caller}, now(), ${historyLength}, ${messages}::jsonb)
          ON CONFLICT DO NOTHING RETURNING epoch`
        if (inserted.length > 0) {
          claims.set(runId, { epoch: 1, sessionId })
          return Option.some(ClaimResult.Claimed({ epoch: 1 }))
        }
        const existing = yield* get(runId)
        if (Option.isSome(existing)) {
          return existing.value.sessionId === sessionId
            ? Option.some(ClaimResult.Existing({ row: existing.value }))
            : yield* new RunIdTakenError({ runId, sessionId: existing.value.sessionId })
        }
        const busy = yield* active(sessionId)
        if (Option.isSome(busy)) return yield* new RunRegistry.SessionBusyError({ sessionId, runId: busy.value.runId })
        return Option.none<ClaimResult>() // the session's run ended in between: claim again
      })

    const service: Service = {
      owner,
      table,
      claim: ({ caller, runId, sessionId, transcript }) =>
        claimOnce(
          sessionId,
          runId,
          caller ?? null,
          transcript?.historyLength ?? null,
          transcript === undefined ? null : encodeMessages(transcript.messages)
        ).pipe(
          Effect.repeat({ until: Option.isSome, times: 3 }),
          Effect.flatMap(
            Option.match({
              onSome: Effect.succeed,
              onNone: () => Effect.dieMessage(`@tether/cluster: the claim of run ${runId} kept racing`)
            })
          ),
          Effect.withSpan("RunFence.claim", { attributes: { runId, sessionId } })
        ),
      checkCommit: (runId) =>
        Effect.gen(function* () {
          const epoch = claims.get(runId)?.epoch
          const fenced = (why: string) =>
            new StagedWrites.CommitFencedError({ runId, message: `run ${runId}: ${why}; nothing was applied` })
          if (epoch === undefined) return yield* fenced(`this replica (${owner}) holds no claim on it`)
          const updated = yield* sql`UPDATE ${sql(table)} SET status = 'committed'
            WHERE run_id = ${runId} AND epoch = ${epoch} AND owner = ${owner} AND status = 'running'
            RETURNING run_id`
          if (updated.length === 0) {
            return yield* fenced(
              `its claim at epoch ${epoch} by ${owner} was taken away (its replica was presumed lost)`
            )
          }
        }),
      checkpoint: (runId, messages) =>
        Effect.suspend(() => {
          const epoch = claims.get(runId)?.epoch
          if (epoch === undefined) return Effect.succeed(false)
          return Effect.map(
            sql`UPDATE ${sql(table)} SET messages = ${encodeMessages(messages)}::jsonb
              WHERE run_id = ${runId} AND epoch = ${epoch} AND owner = ${owner} AND status = 'running'
              RETURNING run_id`,
            (rows) => rows.length > 0
          )
        }),
      transcriptOf: (runId) =>
        Effect.map(
          sql<{ history_length: number | null; messages: string | null }>`SELECT history_length,
              messages::text AS messages FROM ${sql(table)} WHERE run_id = ${runId}`,
          (rows) => {
            const row = rows[0]
            if (row?.history_length == null || row.messages === null) return Option.none()
            const historyLength = Number(row.history_length)
            return Option.map(decodeMessages(row.messages), (messages): RunTranscript => ({ historyLength, messages }))
          }
        ),
      end: (runId, reason) =>
        Effect.suspend(() => {
          const epoch = claims.get(runId)?.epoch
          if (epoch === undefined) return Effect.void
          return sql`UPDATE ${sql(table)} SET status = 'ended', reason = ${reason}, ended_at = now()
            WHERE run_id = ${runId} AND epoch = ${epoch} AND owner = ${owner} AND status <> 'ended'`.pipe(
            Effect.zipRight(Effect.sync(() => void claims.delete(runId)))
          )
        }),
      heartbeat: Effect.gen(function* () {
        const held = yield* sql<{ run_id: string; epoch: number }>`UPDATE ${sql(table)} SET heartbeat = now()
          WHERE owner = ${owner} AND status <> 'ended' RETURNING run_id, epoch`
        const current = new Map(held.map((row) => [row.run_id, Number(row.epoch)]))
        const lost: Array<LostClaim> = []
        for (const [runId, { epoch, sessionId }] of claims) {
          if (current.get(runId) !== epoch) {
            claims.delete(runId)
            const row = yield* get(runId)
            lost.push({ runId, sessionId, reason: Option.getOrUndefined(row)?.reason })
          }
        }
        if (calling.size > 0) {
          yield* sql`UPDATE ${sql(table)} SET caller_heartbeat = now()
            WHERE run_id = ANY(${[...calling.keys()]}) AND caller = ${owner} AND status <> 'ended'`
        }
        return lost
      }),
      leaseAsCaller: (runId) =>
        Effect.acquireRelease(
          Effect.sync(() => void calling.set(runId, (calling.get(runId) ?? 0) + 1)),
          () =>
            Effect.sync(() => {
              const holders = (calling.get(runId) ?? 1) - 1
              if (holders === 0) calling.delete(runId)
              else calling.set(runId, holders)
            })
        ),
      callersLost: (staleAfter) =>
        Effect.map(
          sql<{ run_id: string; session_id: string; caller: string }>`SELECT run_id, session_id, caller
            FROM ${sql(table)} WHERE owner = ${owner} AND status = 'running' AND caller IS NOT NULL
              AND caller_heartbeat < now() - make_interval(secs => ${Duration.toMillis(staleAfter) / 1000})`,
          (rows) => rows.map((row) => ({ runId: row.run_id, sessionId: row.session_id, caller: row.caller }))
        ),
      sweep: (staleAfter) =>
        Effect.map(
          sql<Row>`UPDATE ${sql(table)} AS runs
            SET status = 'ended', epoch = runs.epoch + 1, ended_at = now(),
              reason = CASE WHEN runs.status = 'committed' THEN 'Completed' ELSE 'LostReplica' END
            FROM (SELECT run_id, status, reason FROM ${sql(table)}
              WHERE status <> 'ended' AND heartbeat < now() - make_interval(secs => ${Duration.toMillis(staleAfter) / 1000})
              FOR UPDATE SKIP LOCKED) AS before
            WHERE runs.run_id = before.run_id
            RETURNING runs.run_id, runs.session_id, runs.epoch - 1 AS epoch, runs.owner, before.status, before.reason`,
          (rows) => rows.map(toRunRow)
        ),
      revoke: (runId, reason) =>
        Effect.map(
          sql<Row>`UPDATE ${sql(table)} SET status = 'ended', reason = ${reason}, epoch = epoch + 1, ended_at = now()
            WHERE run_id = ${runId} AND status = 'running'
            RETURNING run_id, session_id, epoch - 1 AS epoch, owner, 'running' AS status, NULL AS reason`,
          (rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)
        ),
      runningElsewhere: Effect.map(
        sql<Row>`SELECT run_id, session_id, epoch, owner, status, reason FROM ${sql(table)}
          WHERE status = 'running' AND owner <> ${owner}`,
        (rows) => rows.map(toRunRow)
      ),
      get,
      active,
      latest
    }
    return service
  })

/**
 * The service on the `SqlClient` in context, its table created if missing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RunFence, SqlError, SqlClient.SqlClient> =>
  Layer.effect(RunFence, make(options))

/**
 * `SqlStagedWrites` whose every commit is fenced by the run's claim (`checkCommit` as its `beforeCommit`): the runs
 * of the session entity commit through it. Same options as `SqlStagedWrites.layer`, on the same `SqlClient` (the run
 * rows and the records must be in one database, so that the check and the writes are one transaction).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStagedWrites = (
  options: Omit<SqlStagedWrites.Options, "beforeCommit"> = {}
): Layer.Layer<StagedWrites.StagedWrites | SqlStagedWrites.Records, SqlError, RunFence | SqlClient.SqlClient> =>
  Layer.unwrapEffect(
    Effect.map(RunFence, (fence) => SqlStagedWrites.layer({ ...options, beforeCommit: fence.checkCommit }))
  )
