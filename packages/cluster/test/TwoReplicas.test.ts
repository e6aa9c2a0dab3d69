/**
 * Two replicas as child processes on loopback, on PostgreSQL (a database of their own: the engine's shard locks do
 * not depend on the table prefix) and the fake Anthropic server (real HTTP, real SSE, in this process).
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { expect, it } from "@effect/vitest"
import { FakeAnthropic } from "@tether/testing"
import { Deferred, Effect, Layer, Redacted, Schedule } from "effect"
import type { Scope } from "effect"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import * as url from "node:url"
import { client, describePostgres, postgresUrl } from "./support/Postgres.js"

const here = path.dirname(url.fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../..")
const replicaScript = path.join(here, "fixtures", "replica.ts")

/** A fresh database for the cluster, dropped when the scope closes. */
const freshDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const name = `tt_cluster_${process.pid}_${crypto.randomBytes(3).toString("hex")}`
  yield* sql`CREATE DATABASE ${sql(name)}`
  yield* Effect.addFinalizer(() => Effect.ignoreLogged(sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`))
  const location = new URL(postgresUrl)
  location.pathname = `/${name}`
  return location.toString()
})

const freePort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

interface Replica {
  readonly name: string
  readonly owner: string
  readonly send: (command: Record<string, unknown>) => Effect.Effect<any, string>
  readonly stderr: () => string
  /** SIGKILL, resolved once the process is gone. */
  readonly killHard: Effect.Effect<void>
}

/** Starts a replica; it is killed when the scope closes. */
const spawnReplica = (name: string, env: Record<string, string>): Effect.Effect<Replica, string, Scope.Scope> =>
  Effect.gen(function* () {
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() =>
        childProcess.spawn(process.execPath, ["--import", "tsx", replicaScript], {
          cwd: repoRoot,
          env: { ...process.env, ...env },
          stdio: ["pipe", "pipe", "pipe"]
        })
      ),
      (proc) =>
        Effect.async<void>((resume) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
          proc.once("exit", () => resume(Effect.void))
          proc.kill("SIGKILL")
        })
    )
    let stderr = ""
    proc.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const pending = new Map<number, Deferred.Deferred<any, string>>()
    const ready = yield* Deferred.make<string, string>()
    let buffer = ""
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk
      const lines = buffer.split("\n")
      buffer = lines.pop()!
      for (const line of lines) {
        if (!line.startsWith("@@ ")) continue
        const message = JSON.parse(line.slice(3))
        if (message.ready !== undefined) Deferred.unsafeDone(ready, Effect.succeed(message.ready))
        const waiting = pending.get(message.id)
        if (waiting === undefined) continue
        pending.delete(message.id)
        Deferred.unsafeDone(
          waiting,
          message.error === undefined ? Effect.succeed(message.result) : Effect.fail(message.error)
        )
      }
    })
    proc.once("exit", (code) => {
      const failure = Effect.fail(`replica ${name} exited (${code}): ${stderr}`)
      Deferred.unsafeDone(ready, failure)
      for (const waiting of pending.values()) Deferred.unsafeDone(waiting, failure)
    })
    const owner = yield* Deferred.await(ready).pipe(
      Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => `replica ${name} not ready: ${stderr}` })
    )
    let nextId = 0
    const send = (command: Record<string, unknown>) =>
      Effect.gen(function* () {
        const id = nextId++
        const answer = yield* Deferred.make<any, string>()
        pending.set(id, answer)
        proc.stdin.write(`${JSON.stringify({ ...command, id })}\n`)
        return yield* Deferred.await(answer).pipe(
          Effect.timeoutFail({
            duration: "30 seconds",
            onTimeout: () => `no answer from ${name} to ${JSON.stringify(command)}: ${stderr}`
          })
        )
      })
    const killHard = Effect.async<void>((resume) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
      proc.once("exit", () => resume(Effect.void))
      proc.kill("SIGKILL")
    })
    return { name, owner, send, stderr: () => stderr, killHard }
  })

/** The note-taking agent's model: it calls `save_note` first, then answers slowly (or at once for "quick"). */
const script: FakeAnthropic.Script = (request) => {
  const transcript = JSON.stringify(request.body.messages)
  const first = request.body.messages[0]
  const message = JSON.stringify(first?.content ?? "")
  const key = /note ([A-Za-z0-9-]+)/.exec(message)?.[1] ?? "none"
  if (!transcript.includes("tool_result")) return FakeAnthropic.toolUse("save_note", { key, text: "buy milk" })
  return message.includes("quick")
    ? FakeAnthropic.text("Saved.")
    : FakeAnthropic.text(Array.from({ length: 400 }, (_, i) => `word${i}`).join(" "), { interval: 50 })
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Two replicas on a fresh database, the fake model, and a client of that database. */
const twoReplicas = Effect.gen(function* () {
  const databaseUrl = yield* freshDatabase
  const fake = yield* FakeAnthropic.make(script)
  const [portA, portB] = [yield* freePort, yield* freePort]
  const common = { DATABASE_URL: databaseUrl, PREFIX: prefix, FAKE_URL: fake.url }
  const [a, b] = yield* Effect.all(
    [
      spawnReplica("A", { ...common, RUNNER_PORT: String(portA) }),
      spawnReplica("B", { ...common, RUNNER_PORT: String(portB) })
    ],
    { concurrency: 2 }
  )
  const context = yield* Layer.build(PgClient.layer({ url: Redacted.make(databaseUrl) }))
  const query = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
    Effect.flatMap(SqlClient.SqlClient, f).pipe(Effect.provide(context))
  return { fake, a, b, query }
})

const prefix = "tether_cluster"

const notesCommitted = (query: <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) => Effect.Effect<A, E>) =>
  query((sql) => sql<{ key: string }>`SELECT key FROM ${sql(`${prefix}_records`)} ORDER BY key`).pipe(
    Effect.map((rows) => rows.map((row) => row.key))
  )

/** Waits until the run row of `runId` is ended. */
const endedRow = (
  query: <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) => Effect.Effect<A, E>,
  runId: string
) =>
  query((sql) => sql`SELECT status FROM ${sql(`${prefix}_runs`)} WHERE run_id = ${runId} AND status = 'ended'`).pipe(
    Effect.filterOrFail(
      (rows) => rows.length === 1,
      () => `${runId} has not ended`
    ),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
  )

/** Writes a measured figure under test-artifacts/ for the report. */
const writeFigure = (file: string, line: string) => {
  fs.mkdirSync(path.join(repoRoot, "test-artifacts"), { recursive: true })
  fs.writeFileSync(path.join(repoRoot, "test-artifacts", file), `${line}\n`)
}

describePostgres("two replicas (child processes, loopback, PostgreSQL, fake Anthropic)", () => {
  it.live(
    "a run started through replica A and stopped through the other replica ends Cancelled(UserAbort): the model's socket closes and nothing commits",
    () =>
      Effect.gen(function* () {
        const { a, b, fake, query } = yield* twoReplicas

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
