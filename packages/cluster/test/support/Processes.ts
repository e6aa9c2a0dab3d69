/**
 * Replicas as child processes on loopback (test/fixtures/replica.ts, driven over stdin/stdout), on PostgreSQL (a
 * database of their own: the engine's shard locks do not depend on the table prefix), and the fake Anthropic server
 * (real HTTP, real SSE, in this process).
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Layer, Redacted, Schedule } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { postgresUrl } from "./Postgres.js"
import * as ReplicaProcess from "./ReplicaProcess.js"
import { freePort, repoRoot, spawnReplica } from "./ReplicaProcess.js"

export { freePort, shardsSettled, spawnReplica } from "./ReplicaProcess.js"
export type { Replica } from "./ReplicaProcess.js"

/** A fresh database for the cluster, dropped when the scope closes. */
export const freshDatabase = ReplicaProcess.freshDatabase(postgresUrl)

/**
 * The note-taking agent's model: for the run's message (the last user message with text: a session's history comes
 * before it) it calls `save_note` first, then answers slowly (400 words, one per 50 ms, or per 150 ms when the message
 * says "long"), or at once for "quick".
 */
export const script: FakeAnthropic.Script = (request) => {
  const messages = request.body.messages
  let latest = messages.length - 1
  const hasText = (content: unknown) => typeof content === "string" || JSON.stringify(content).includes('"type":"text"')
  while (latest > 0 && !(messages[latest]!.role === "user" && hasText(messages[latest]!.content))) latest--
  const message = JSON.stringify(messages[latest]?.content ?? "")
  const key = /note ([A-Za-z0-9-]+)/.exec(message)?.[1] ?? "none"
  if (!JSON.stringify(messages.slice(latest)).includes("tool_result")) {
    return FakeAnthropic.toolUse("save_note", { key, text: "buy milk" })
  }
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
