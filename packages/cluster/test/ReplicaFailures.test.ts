/**
 * What happens to a run when a replica other than a clean owner fails: the caller's replica killed with -9 (the
 * `cancel` and `detach` disconnect policies). Two replica processes on loopback, PostgreSQL, the fake Anthropic server.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import type { Duration } from "effect"
import { performance } from "node:perf_hooks"
import type { Replica } from "./support/Processes.js"
import { notesCommitted, prefix, twoReplicas, writeFigure } from "./support/Processes.js"
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
