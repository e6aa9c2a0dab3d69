/**
 * Two replicas as child processes on loopback, on PostgreSQL (a database of their own: the engine's shard locks do
 * not depend on the table prefix) and the fake Anthropic server (real HTTP, real SSE, in this process).
 */
import { expect, it } from "@effect/vitest"
import { Message } from "@tether/core"
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

describePostgres("the transcript of a lost run (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "the owner killed with -9 mid-run: the run's transcript as far as its last checkpoint becomes the session's, every tool call answered, and the session's next message continues it on the survivor",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicas
        yield* shardsSettled([a, b])
        // `detach`: the run's client (on A) plays no part; whichever replica owns the run is killed.
        const { runId } = yield* a.send({
          op: "start-follow",
          sessionId: "s-t",
          message: "note t",
          disconnect: "detach"
        })
        const [, streaming] = yield* fake.awaitRequests(2)
        yield* fake.awaitTokens(streaming!.index, 2)
        // The owner's heartbeat checkpoints the run: its message, the tool call and its answer, the text streamed.
        yield* query(
          (sql) => sql<{ n: number | null }>`SELECT jsonb_array_length(messages) AS n FROM ${sql(`${prefix}_runs`)}
            WHERE run_id = ${runId}`
        ).pipe(
          Effect.filterOrFail(
            (rows) => Number(rows[0]?.n ?? 0) >= 4,
            () => "no checkpoint with the streamed text yet"
          ),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("10 seconds")))
        )
        const status = yield* a.send({ op: "status", sessionId: "s-t" })
        expect(status).toMatchObject({ _tag: "Running", runId })
        const [owner, survivor] = status.owner === a.owner ? [a, b] : [b, a]
        yield* owner.killHard

        // The survivor's sweeper ends the run and saves its transcript in the session's record.
        const saved = yield* survivor.send({ op: "session", sessionId: "s-t" }).pipe(
          Effect.filterOrFail(
            (session) => session.found && session.runId === runId && session.transcript.length >= 4,
            (session) => `not saved yet: ${JSON.stringify(session)}`
          ),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
        )
        expect(yield* survivor.send({ op: "status", sessionId: "s-t" })).toMatchObject({
          _tag: "Ended",
          runId,
          reason: "LostReplica"
        })
        const transcript: ReadonlyArray<Message.Message> = saved.transcript
        expect(transcript.map((message) => message.role)).toEqual(["user", "assistant", "user", "assistant"])
        expect(Message.text(transcript[0]!)).toBe("note t")
        const toolUse = transcript[1]!.content[0]!
        expect(toolUse).toMatchObject({ type: "tool_use", name: "save_note" })
        expect(transcript[2]!.content[0]).toMatchObject({
          type: "tool_result",
          toolUseId: (toolUse as Message.ToolUseBlock).id
        })
        expect(Message.text(transcript[3]!)).toMatch(/^word0 word1/)
        expect(Message.unansweredToolUses(transcript)).toEqual([])
        expect(yield* notesCommitted(query)).toEqual([])

        // The session's next message runs on the survivor, after the saved transcript, and its run saves the rest.
        const next = yield* survivor.send({
          op: "start-follow",
          sessionId: "s-t",
          message: "note t2 quick",
          disconnect: "detach"
        })
        const [, , first] = yield* fake.awaitRequests(3)
        const sent = first!.request!.messages
        expect(sent.length).toBe(transcript.length + 1)
        expect(sent.map((message) => message.role)).toEqual([...transcript.map((message) => message.role), "user"])
        expect(JSON.stringify(sent[3])).toContain("word0 word1")
        yield* endedRow(query, next.runId)
        expect(yield* notesCommitted(query)).toEqual(["t2"])
        const after = yield* survivor.send({ op: "session", sessionId: "s-t" }).pipe(
          Effect.filterOrFail(
            (session) => session.runId === next.runId && session.transcript.length === transcript.length + 4,
            (session) => `not saved yet: ${JSON.stringify(session)}`
          ),
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("20 seconds")))
        )
        expect(after.transcript.slice(0, transcript.length)).toEqual(transcript)
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
