/**
 * Two replicas as child processes on loopback, on PostgreSQL (a database of their own: the engine's shard locks do
 * not depend on the table prefix) and the fake Anthropic server (real HTTP, real SSE, in this process).
 */
import { expect, it } from "@effect/vitest"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Schedule } from "effect"
import { performance } from "node:perf_hooks"
import {
  endedRow,
  freePort,
  freshDatabase,
  notesCommitted,
  percentile,
  prefix,
  script,
  shardsSettled,
  spawnReplica,
  twoReplicas,
  writeFigure
} from "./support/Processes.js"
import { client, describePostgres } from "./support/Postgres.js"

describePostgres("two replicas (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "a run started through replica A and stopped through the other replica ends Cancelled(UserAbort): the model's socket closes and nothing commits",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicas
        yield* shardsSettled([a, b])

        // A completed run commits through the fenced commit, across processes.
        expect(
          yield* a.send({ op: "start", sessionId: "s-done", runId: "r-done", message: "note done quick" })
        ).toEqual({
          isResent: false
        })
        yield* endedRow(query, "r-done")
        expect(yield* notesCommitted(query)).toEqual(["done"])

        const stopMillis: Array<number> = []
        const owners = new Set<string>()
        let revoked = 0
        const trials = 12
        for (let trial = 0; trial < trials; trial++) {
          const sessionId = `s-${trial}`
          const started = yield* a.send({ op: "start", sessionId, runId: `r-${trial}`, message: `note k${trial}` })
          expect(started).toEqual({ isResent: false })
          // The run's second request (after its tool staged the note) is streaming.
          const requests = yield* fake.awaitRequests(2 + 2 * (trial + 1))
          const streaming = requests[requests.length - 1]!
          yield* fake.awaitTokens(streaming.index, 2)
          const status = yield* a.send({ op: "status", sessionId })
          expect(status._tag).toBe("Running")
          owners.add(status.owner)
          // Stop through the replica that does not own the run.
          const caller = status.owner === a.owner ? b : a
          expect(caller.owner).not.toBe(status.owner)
          const stopped = yield* caller.send({ op: "stop", sessionId })
          if (stopped.outcome === "Revoked") {
            // The session's shard moved while the run went on (replicas still settling their shards): the Stop reached
            // the new owner, which revoked the run's row; the run's own replica cancels it at its next heartbeat, with
            // the Stop's reason (checked on the rows below), and its model socket closes (checked next).
            revoked++
          } else {
            expect(stopped).toMatchObject({
              found: true,
              wasRunning: true,
              outcome: "Cancelled",
              reason: "UserAbort",
              writesRolledBack: 1
            })
          }
          stopMillis.push(stopped.millis)
          const ended = yield* fake.awaitEnded(streaming.index)
          expect(ended.closedAt).toBeDefined()
          expect(ended.isFinished).toBe(false)
        }
        expect(yield* notesCommitted(query)).toEqual(["done"])
        // The owner records a run's end in its row just after the run ended (the Stop's answer may come first).
        for (let trial = 0; trial < trials; trial++) yield* endedRow(query, `r-${trial}`)
        const ends = yield* query(
          (sql) => sql<{ reason: string; n: string }>`SELECT reason, count(*) AS n FROM ${sql(`${prefix}_runs`)}
            WHERE run_id <> 'r-done' GROUP BY reason`
        )
        expect(ends.map((row) => [row.reason, Number(row.n)])).toEqual([["UserAbort", trials]])
        // The figure, for the report (not an assertion: timings on a shared machine vary).
        writeFigure(
          "cluster-stop-across-replicas.txt",
          `Stop across replicas (RPC to the owner until the run ended, ${trials} trials, owners seen: ${owners.size}, ` +
            `revoked after a shard move: ${revoked}): ` +
            `p50 ${percentile(stopMillis, 50).toFixed(1)} ms, p99 ${percentile(stopMillis, 99).toFixed(1)} ms, ` +
            `max ${Math.max(...stopMillis).toFixed(1)} ms; all: ${stopMillis.map((ms) => ms.toFixed(1)).join(" ")}`
        )
      }).pipe(Effect.scoped, Effect.provide(client)),
    180_000
  )

  it.live(
    "the owner killed with -9 mid-run: the run is ended LostReplica within 10 s, commits nothing, never runs again, and the session's next run runs on the survivor",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicas
        yield* shardsSettled([a, b])
        yield* a.send({ op: "start", sessionId: "s-k", runId: "r-k", message: "note k" })
        const [, streaming] = yield* fake.awaitRequests(2)
        yield* fake.awaitTokens(streaming!.index, 2)
        const status = yield* a.send({ op: "status", sessionId: "s-k" })
        expect(status._tag).toBe("Running")
        const [owner, survivor] = status.owner === a.owner ? [a, b] : [b, a]
        yield* owner.killHard
        const killedAt = performance.now()
        // Asked through the survivor until the session's run is ended.
        const ended = yield* survivor.send({ op: "status", sessionId: "s-k" }).pipe(
          Effect.filterOrFail(
            (status) => status._tag === "Ended",
            () => "still running"
          ),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
        )
        const endedAfter = performance.now() - killedAt
        expect(ended).toMatchObject({ _tag: "Ended", runId: "r-k", reason: "LostReplica" })
        expect(endedAfter).toBeLessThan(10_000)
        expect(yield* notesCommitted(query)).toEqual([])
        // A re-sent start of the lost run answers the run; it is not run again.
        expect(yield* survivor.send({ op: "start", sessionId: "s-k", runId: "r-k", message: "note k" })).toEqual({
          isResent: true
        })
        // The session's next run runs on the survivor (which now owns it) and commits.
        expect(
          yield* survivor.send({ op: "start", sessionId: "s-k", runId: "r-k2", message: "note k2 quick" })
        ).toEqual({ isResent: false })
        yield* endedRow(query, "r-k2")
        expect(yield* notesCommitted(query)).toEqual(["k2"])
        const next = yield* survivor.send({ op: "status", sessionId: "s-k" })
        expect(next).toMatchObject({ _tag: "Ended", runId: "r-k2", reason: "Completed" })
        // The model saw the lost run's two requests once, then the next run's two: nothing ran twice.
        const requests = yield* fake.requests
        const keys = requests.map(
          (request) => /note (\S+?)[ "\\]/.exec(JSON.stringify(request.request?.messages[0]))?.[1]
        )
        expect(keys).toEqual(["k", "k", "k2", "k2"])
        writeFigure(
          "cluster-failover.txt",
          `kill -9 of the owner -> run ended LostReplica as seen through the survivor: ${endedAfter.toFixed(0)} ms`
        )
      }).pipe(Effect.scoped, Effect.provide(client)),
    180_000
  )
})

describePostgres("replicas starting at the same instant (child processes, a fresh database each round)", () => {
  it.live(
    "all of them start: the engine's tables are made one replica at a time, so none loses a race in its migrator",
    () =>
      Effect.gen(function* () {
        // Three replicas build at one instant (START_AT, once each has loaded its code), in two rounds.
        for (let round = 0; round < 2; round++) {
          yield* Effect.gen(function* () {
            const databaseUrl = yield* freshDatabase
            const fake = yield* FakeAnthropic.make(script)
            const ports = [yield* freePort, yield* freePort, yield* freePort]
            const startAt = String(Date.now() + 4_000)
            const replicas = yield* Effect.all(
              ports.map((port, i) =>
                spawnReplica(`R${round}.${i}`, {
                  DATABASE_URL: databaseUrl,
                  PREFIX: prefix,
                  FAKE_URL: fake.url,
                  RUNNER_PORT: String(port),
                  START_AT: startAt
                })
              ),
              { concurrency: "unbounded" }
            )
            expect(new Set(replicas.map((replica) => replica.owner)).size).toBe(3)
            // And they serve: a session's status through each of them.
            for (const replica of replicas) {
              expect(yield* replica.send({ op: "status", sessionId: `s-${round}` })).toMatchObject({ _tag: "Idle" })
            }
          }).pipe(Effect.scoped)
        }
      }).pipe(Effect.provide(client)),
    180_000
  )
})
