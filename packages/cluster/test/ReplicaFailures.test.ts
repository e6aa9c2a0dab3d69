/**
 * What happens to a run when a replica fails in ways other than its owner's death: the caller's replica killed with -9
 * (the `cancel` and `detach` disconnect policies), the owner partitioned (frozen, its shard-lock connection killed)
 * while the other replica takes its shard. Two replica processes on loopback, PostgreSQL, the fake Anthropic server.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import type { Duration } from "effect"
import { performance } from "node:perf_hooks"
import type { Replica } from "./support/Processes.js"
import {
  notesCommitted,
  prefix,
  shardsSettled,
  twoReplicas,
  twoReplicasWith,
  writeFigure
} from "./support/Processes.js"
import { client, describePostgres } from "./support/Postgres.js"

/** A session id whose shard `owner` holds and `other` does not (asked until the replicas' shards settled). */
const sessionOwnedBy = (owner: Replica, other: Replica, tag: string) =>
  Effect.gen(function* () {
    for (let i = 0; ; i++) {
      const sessionId = `s-${tag}-${i}`
      const [mine, theirs] = [
        yield* owner.send({ op: "holds", sessionId }),
        yield* other.send({ op: "holds", sessionId })
      ]
      if (mine.holds && !theirs.holds) return sessionId
      if (i % 20 === 19) yield* Effect.sleep("200 millis")
    }
  })

/** The row of `runId` once `until` holds of it (polled every 50 ms, for at most `upTo`). */
const rowOf = (
  query: Effect.Effect.Success<typeof twoReplicas>["query"],
  runId: string,
  until: (row: { status: string; reason: string | null }) => boolean,
  upTo: Duration.DurationInput
) =>
  query(
    (sql) =>
      sql<{ status: string; reason: string | null }>`SELECT status, reason FROM ${sql(`${prefix}_runs`)}
        WHERE run_id = ${runId}`
  ).pipe(
    Effect.filterOrFail(
      (rows) => rows.length === 1 && until(rows[0]!),
      (rows) => `run ${runId}: ${JSON.stringify(rows)}`
    ),
    Effect.map((rows) => rows[0]!),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(upTo)))
  )

describePostgres("the caller's replica killed with -9 (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "with `cancel` the owner cancels the run (ClientDisconnected) within the caller-lease bound: its model socket closes, nothing commits; with `detach` the run goes on",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicas
        yield* shardsSettled([a, b])
        // Both sessions live on B; A is the caller of both runs (it holds their clients).
        const detached = yield* sessionOwnedBy(b, a, "d")
        const cancelled = yield* sessionOwnedBy(b, a, "c")
        const { runId: detachedRun } = yield* a.send({
          op: "start-follow",
          sessionId: detached,
          message: "note d",
          disconnect: "detach"
        })
        yield* fake.awaitRequests(2)
        const { runId: cancelledRun } = yield* a.send({
          op: "start-follow",
          sessionId: cancelled,
          message: "note c",
          disconnect: "cancel"
        })
        const requests = yield* fake.awaitRequests(4)
        const streaming = requests[3]!
        expect(JSON.stringify(streaming.request?.messages[0])).toContain("note c")
        yield* fake.awaitTokens(streaming.index, 2)
        expect(yield* b.send({ op: "status", sessionId: cancelled })).toMatchObject({
          _tag: "Running",
          runId: cancelledRun,
          owner: b.owner
        })

        yield* a.killHard
        const killedAt = performance.now()
        const ended = yield* rowOf(query, cancelledRun, (row) => row.status === "ended", "30 seconds")
        const endedAfter = performance.now() - killedAt
        expect(ended.reason).toBe("ClientDisconnected")
        // Bound: the lease (3 s) + a missed renewal and the owner's check (1 s each), with room for a loaded machine.
        expect(endedAfter).toBeLessThan(15_000)
        const socket = yield* fake.awaitEnded(streaming.index)
        expect(socket.closedAt).toBeDefined()
        expect(socket.isFinished).toBe(false)
        expect(yield* notesCommitted(query)).toEqual([])

        // The `detach` run, whose caller died just as long ago, goes on: still running two heartbeats past the bound.
        yield* Effect.sleep("2 seconds")
        expect(yield* b.send({ op: "status", sessionId: detached })).toMatchObject({
          _tag: "Running",
          runId: detachedRun
        })
        expect(yield* b.send({ op: "stop", sessionId: detached })).toMatchObject({ reason: "UserAbort" })
        writeFigure(
          "cluster-caller-lost.txt",
          `kill -9 of the caller's replica (cancel policy, caller lease 3 s, heartbeat 1 s) -> run row ended ` +
            `ClientDisconnected on the owner: ${endedAfter.toFixed(0)} ms`
        )
      }).pipe(Effect.scoped, Effect.provide(client)),
    180_000
  )
})

describePostgres("a partitioned owner (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "an owner whose shard-lock connection was killed while it was cut off, and whose shard the other replica took, never commits its run",
    () =>
      Effect.gen(function* () {
        // The sweep is out of the way (its bound is two minutes): only shard ownership can stop the run.
        const { a, b, fake, query } = yield* twoReplicasWith({ STALE_AFTER_MS: "120000" })
        yield* shardsSettled([a, b])
        const sessionId = yield* sessionOwnedBy(a, b, "p")
        // The run stages its note, then streams for a minute before it would commit.
        yield* a.send({ op: "start", sessionId, runId: "r-p", message: "note p long" })
        const [, streaming] = yield* fake.awaitRequests(2)
        yield* fake.awaitTokens(streaming!.index, 2)
        expect(yield* a.send({ op: "status", sessionId })).toMatchObject({ _tag: "Running", owner: a.owner })

        // A is cut off (frozen), and PostgreSQL drops its shard-lock connection (as TCP keepalive would).
        yield* a.signal("SIGSTOP")
        const lockBackends = yield* query(
          (sql) => sql<{ pid: number }>`SELECT DISTINCT locks.pid FROM pg_locks AS locks
            JOIN pg_stat_activity AS activity ON activity.pid = locks.pid
            WHERE locks.locktype = 'advisory' AND locks.granted
              AND activity.application_name = ${`tether-replica-${a.pid}`}`
        )
        expect(lockBackends.length).toBe(1)
        yield* query((sql) => sql`SELECT pg_terminate_backend(${lockBackends[0]!.pid})`)
        const cutAt = performance.now()
        // B takes the session's shard (it finds A unhealthy, and A's locks are gone).
        yield* b.send({ op: "holds", sessionId }).pipe(
          Effect.filterOrFail(
            (answer) => answer.holds === true,
            () => "B does not hold the shard yet"
          ),
          Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("60 seconds")))
        )
        const takenAfter = performance.now() - cutAt
        // A comes back at once, its run still going, and believing it owns the session until it learns otherwise.
        yield* a.signal("SIGCONT")
        const ended = yield* rowOf(query, "r-p", (row) => row.status === "ended", "30 seconds")
        const endedAfter = performance.now() - cutAt
        expect(ended.reason).toBe("LostReplica")
        // The run on A is cancelled (its model socket closes before the answer is done) and nothing is committed.
        const socket = yield* fake.awaitEnded(streaming!.index)
        expect(socket.isFinished).toBe(false)
        expect(yield* notesCommitted(query)).toEqual([])
        // The session takes a new run, on whichever replica holds it once A is back in the ring, and that one commits.
        yield* shardsSettled([a, b])
        const owner = (yield* b.send({ op: "holds", sessionId })).holds ? b : a
        yield* owner.send({ op: "start", sessionId, runId: "r-p2", message: "note p2 quick" })
        yield* rowOf(query, "r-p2", (row) => row.status === "ended", "30 seconds")
        expect(yield* notesCommitted(query)).toEqual(["p2"])
        writeFigure(
          "cluster-partitioned-owner.txt",
          `owner frozen + its lock backend terminated -> the other replica held the shard after ${takenAfter.toFixed(0)} ms; ` +
            `the run's row ended LostReplica ${endedAfter.toFixed(0)} ms after the cut (owner resumed at once)`
        )
      }).pipe(Effect.scoped, Effect.provide(client)),
    180_000
  )
})

describePostgres("an owner given SIGTERM (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "its run ends Cancelled(Shutdown) in its row and commits nothing, the process exits 0 within its drain deadline, and the session's next run runs on the other replica",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicasWith({ DRAIN_TIMEOUT_MS: "5000" })
        yield* shardsSettled([a, b])
        const sessionId = yield* sessionOwnedBy(a, b, "t")
        // Started through B; the run lives on A.
        yield* b.send({ op: "start", sessionId, runId: "r-t", message: "note t" })
        const [, streaming] = yield* fake.awaitRequests(2)
        yield* fake.awaitTokens(streaming!.index, 2)
        expect(yield* b.send({ op: "status", sessionId })).toMatchObject({ _tag: "Running", owner: a.owner })

        const sentAt = performance.now()
        const code = yield* a.terminate
        const exitedAfter = performance.now() - sentAt
        expect(code).toBe(0)
        // Drain deadline 5 s, then the engine's own shutdown (entityTerminationTimeout 5 s): generous on a loaded machine.
        expect(exitedAfter).toBeLessThan(20_000)
        // The run was cancelled before the process exited: its row ended Shutdown, its socket closed, nothing committed.
        expect(yield* rowOf(query, "r-t", () => true, "1 second")).toEqual({ status: "ended", reason: "Shutdown" })
        const socket = yield* fake.awaitEnded(streaming!.index)
        expect(socket.isFinished).toBe(false)
        expect(socket.closedAt! - sentAt).toBeLessThan(exitedAfter + 1)
        expect(yield* notesCommitted(query)).toEqual([])

        // The session's next run runs on B and commits.
        const nextAt = performance.now()
        expect(yield* b.send({ op: "start", sessionId, runId: "r-t2", message: "note t2 quick" })).toEqual({
          isResent: false
        })
        const startedAfter = performance.now() - nextAt
        yield* rowOf(query, "r-t2", (row) => row.status === "ended", "30 seconds")
        const rows = yield* query(
          (sql) => sql<{ owner: string; reason: string }>`SELECT owner, reason FROM ${sql(`${prefix}_runs`)}
            WHERE run_id = 'r-t2'`
        )
        expect(rows).toEqual([{ owner: b.owner, reason: "Completed" }])
        expect(yield* notesCommitted(query)).toEqual(["t2"])
        writeFigure(
          "cluster-shutdown.txt",
          `SIGTERM of the owner mid-run (drain deadline 5 s) -> process exited 0 after ${exitedAfter.toFixed(0)} ms ` +
            `(model socket closed after ${(socket.closedAt! - sentAt).toFixed(0)} ms); the session's next Start through ` +
            `the other replica answered after ${startedAfter.toFixed(0)} ms`
        )
      }).pipe(Effect.scoped, Effect.provide(client)),
    180_000
  )
})
