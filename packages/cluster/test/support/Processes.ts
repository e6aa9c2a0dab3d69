/**
 * Replicas as child processes on loopback (test/fixtures/replica.ts, driven over stdin/stdout), on PostgreSQL (a
 * database of their own: the engine's shard locks do not depend on the table prefix), and the fake Anthropic server
 * (real HTTP, real SSE, in this process).
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { FakeAnthropic } from "@tether/testing"
import { Deferred, Effect, Layer, Redacted, Schedule } from "effect"
import type { Scope } from "effect"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as url from "node:url"
import { postgresUrl } from "./Postgres.js"

const here = path.dirname(url.fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../../..")
const replicaScript = path.join(here, "..", "fixtures", "replica.ts")

/** A fresh database for the cluster, dropped when the scope closes. */
export const freshDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const name = `tt_cluster_${process.pid}_${crypto.randomBytes(3).toString("hex")}`
  yield* sql`CREATE DATABASE ${sql(name)}`
  yield* Effect.addFinalizer(() => Effect.ignoreLogged(sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`))
  const location = new URL(postgresUrl)
  location.pathname = `/${name}`
  return location.toString()
})

export const freePort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

export interface Replica {
  readonly name: string
  readonly owner: string
  readonly send: (command: Record<string, unknown>) => Effect.Effect<any, string>
  readonly stderr: () => string
  /** SIGKILL, resolved once the process is gone. */
  readonly killHard: Effect.Effect<void>
  /** SIGTERM, resolved with the exit code (`null` if a signal ended it) once the process is gone. */
  readonly terminate: Effect.Effect<number | null>
  /** Sends `signal` (SIGSTOP freezes the replica, SIGCONT resumes it). */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** The process id (its PostgreSQL connections have `application_name` `tether-replica-<pid>`). */
  readonly pid: number
}

/** Starts a replica; it is killed when the scope closes. */
export const spawnReplica = (name: string, env: Record<string, string>): Effect.Effect<Replica, string, Scope.Scope> =>
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
    const terminate = Effect.async<number | null>((resume) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.succeed(proc.exitCode))
      proc.once("exit", (code) => resume(Effect.succeed(code)))
      proc.kill("SIGTERM")
    })
    const signal = (signal: NodeJS.Signals) => Effect.sync(() => void proc.kill(signal))
    return { name, owner, send, stderr: () => stderr, killHard, terminate, signal, pid: proc.pid! }
  })

/**
 * The note-taking agent's model: it calls `save_note` first, then answers slowly (400 words, one per 50 ms, or per
 * 150 ms when the message says "long"), or at once for "quick".
 */
export const script: FakeAnthropic.Script = (request) => {
  const transcript = JSON.stringify(request.body.messages)
  const first = request.body.messages[0]
  const message = JSON.stringify(first?.content ?? "")
  const key = /note ([A-Za-z0-9-]+)/.exec(message)?.[1] ?? "none"
  if (!transcript.includes("tool_result")) return FakeAnthropic.toolUse("save_note", { key, text: "buy milk" })
  return message.includes("quick")
    ? FakeAnthropic.text("Saved.")
    : FakeAnthropic.text(Array.from({ length: 400 }, (_, i) => `word${i}`).join(" "), {
        interval: message.includes("long") ? 150 : 50
      })
}

export const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Two replicas on a fresh database (`env` added to their environment), the fake model, and a client of that database. */
export const twoReplicasWith = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const databaseUrl = yield* freshDatabase
    const fake = yield* FakeAnthropic.make(script)
    const [portA, portB] = [yield* freePort, yield* freePort]
    const common = { ...env, DATABASE_URL: databaseUrl, PREFIX: prefix, FAKE_URL: fake.url }
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

export const twoReplicas = twoReplicasWith({})

/**
 * Waits until the replicas' shards have settled: each of 20 sessions held by exactly one of them, twice in a row a
 * second apart. (A run started while shards still move may be revoked when its session's shard moves.)
 */
export const shardsSettled = (replicas: ReadonlyArray<Replica>) =>
  Effect.gen(function* () {
    const holders = Effect.forEach(
      Array.from({ length: 20 }, (_, i) => `s-settle-${i}`),
      (sessionId) =>
        Effect.map(
          Effect.forEach(replicas, (replica) => replica.send({ op: "holds", sessionId })),
          (answers) => replicas.filter((_, i) => answers[i].holds).map((replica) => replica.name)
        )
    )
    let previous = ""
    for (;;) {
      const held = yield* holders
      const now = JSON.stringify(held)
      if (now === previous && held.every((holding) => holding.length === 1)) return
      previous = now
      yield* Effect.sleep("1 second")
    }
  }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => "the shards did not settle" }))

export const prefix = "tether_cluster"

export const notesCommitted = (
  query: <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) => Effect.Effect<A, E>
) =>
  query((sql) => sql<{ key: string }>`SELECT key FROM ${sql(`${prefix}_records`)} ORDER BY key`).pipe(
    Effect.map((rows) => rows.map((row) => row.key))
  )

/** Waits until the run row of `runId` is ended. */
export const endedRow = (
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
export const writeFigure = (file: string, line: string) => {
  fs.mkdirSync(path.join(repoRoot, "test-artifacts"), { recursive: true })
  fs.writeFileSync(path.join(repoRoot, "test-artifacts", file), `${line}\n`)
}
