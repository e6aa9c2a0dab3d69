/**
 * A replica of the cluster tests as a child process (test/fixtures/replica.ts on loopback, driven over stdin and
 * stdout), the fresh database it runs on, and the wait until replicas agree on their shards. Nothing here imports
 * vitest: `pnpm bench --cluster` drives the same replicas.
 */
import { SqlClient } from "@effect/sql"
import { Deferred, Effect } from "effect"
import type { Scope } from "effect"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as net from "node:net"
import * as path from "node:path"
import * as url from "node:url"

/** The repository's root, as this module finds it from its own place (not where a bundle of it runs). */
export const repoRoot = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), "../../../..")

/** A fresh database for the cluster, dropped when the scope closes. */
export const freshDatabase = (baseUrl: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const name = `tt_cluster_${process.pid}_${crypto.randomBytes(3).toString("hex")}`
    yield* sql`CREATE DATABASE ${sql(name)}`
    yield* Effect.addFinalizer(() => Effect.ignoreLogged(sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`))
    const location = new URL(baseUrl)
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

/** Starts a replica of the repository at `root`; it is killed when the scope closes. */
export const spawnReplica = (
  name: string,
  env: Record<string, string>,
  root: string = repoRoot
): Effect.Effect<Replica, string, Scope.Scope> =>
  Effect.gen(function* () {
    const replicaScript = path.join(root, "packages", "cluster", "test", "fixtures", "replica.ts")
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() =>
        childProcess.spawn(process.execPath, ["--import", "tsx", replicaScript], {
          cwd: root,
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
