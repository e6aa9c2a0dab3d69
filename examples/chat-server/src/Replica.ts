/**
 * One replica of the chat server in cluster mode, as a child process (`node --import tsx src/main.ts` with
 * `CLUSTER_RUNNER_PORT` set): what `pnpm start:cluster` starts three of, and the cluster tests two. It listens on
 * 127.0.0.1 and a free port, which it announces; its runner on 127.0.0.1 and `runnerPort`. (The deprecation warning
 * that `pg` prints for the runner's lock connection, a known one, is not shown.) When the scope closes it
 * is sent SIGTERM (its runs are cancelled with `Shutdown`) and awaited, and killed if it has not exited 20 s later.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Replica from "./Replica.js"
 *
 * const program = Effect.gen(function* () {
 *   const replica = yield* Replica.spawn({
 *     name: "replica-1",
 *     runnerPort: yield* Replica.freePort,
 *     databaseUrl: "postgres://postgres@127.0.0.1:5432/test",
 *     prefix: "tether_chat"
 *   })
 *   return `http://127.0.0.1:${replica.port}`
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as childProcess from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { Deferred, Effect, Schema } from "effect"
import type { Scope } from "effect"

const mainScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.ts")

/** @since 0.1.0 */
export interface Options {
  /** Shown by the page, in the `x-tether-replica` header and at the start of the lines it writes. */
  readonly name: string
  readonly runnerPort: number
  /** PostgreSQL: the same database and `prefix` for every replica of the cluster. */
  readonly databaseUrl: string
  readonly prefix: string
  /** More of its environment (`SESSION_SECRET`, the same on every replica; `ANTHROPIC_*`). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Each line it writes (stdout and stderr). Default: none are shown. */
  readonly onLine?: ((line: string) => void) | undefined
}

/** @since 0.1.0 */
export interface Replica {
  readonly name: string
  /** Its HTTP port on 127.0.0.1. */
  readonly port: number
  readonly runnerPort: number
  readonly pid: number
  /** Every line it wrote so far. */
  readonly output: () => string
  /** Resolves with its exit code (`null` when a signal ended it) once it has exited. */
  readonly exited: Effect.Effect<number | null>
  /** Sends `signal`; `exited` tells when it is gone. */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/**
 * The replica exited (or could not start) before it announced its port.
 *
 * @since 0.1.0
 */
export class ReplicaStartError extends Schema.TaggedError<ReplicaStartError>()("ReplicaStartError", {
  name: Schema.String,
  message: Schema.String
}) {}

/**
 * A free TCP port of 127.0.0.1 (free when asked: another process could take it before it is used).
 *
 * @since 0.1.0
 */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const announced = /Tether chat server \(.*\) on http:\/\/localhost:(\d+)/

/**
 * Starts a replica; resolves once it listens. SIGTERM and awaited when the scope closes.
 *
 * @since 0.1.0
 */
export const spawn = (options: Options): Effect.Effect<Replica, ReplicaStartError, Scope.Scope> =>
  Effect.gen(function* () {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        childProcess.spawn(process.execPath, ["--import", "tsx", "--disable-warning=DeprecationWarning", mainScript], {
          cwd: path.dirname(path.dirname(mainScript)),
          stdio: ["ignore", "pipe", "pipe"],
          env: {
            ...process.env,
            ...options.env,
            PORT: "0",
            HOST: "127.0.0.1",
            CLUSTER_RUNNER_HOST: "127.0.0.1",
            CLUSTER_RUNNER_PORT: String(options.runnerPort),
            CLUSTER_PREFIX: options.prefix,
            REPLICA_NAME: options.name,
            DATABASE_URL: options.databaseUrl
          }
        })
      ),
      (child) => stop(child)
    )
    const exitCode = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    const port = yield* Deferred.make<number, ReplicaStartError>()
    let output = ""
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        output += `${line}\n`
        options.onLine?.(line)
        const match = announced.exec(line)
        if (match !== null) Deferred.unsafeDone(port, Effect.succeed(Number(match[1])))
      })
    }
    child.once("exit", (code, signal) =>
      Deferred.unsafeDone(
        port,
        Effect.fail(
          new ReplicaStartError({
            name: options.name,
            message: `exited (${code ?? signal}) before it listened:\n${output}`
          })
        )
      )
    )
    return {
      name: options.name,
      port: yield* Deferred.await(port),
      runnerPort: options.runnerPort,
      pid: child.pid!,
      output: () => output,
      exited: Effect.promise(() => exitCode),
      kill: (signal) => Effect.sync(() => void child.kill(signal))
    }
  })

/** SIGTERM, then SIGKILL if it is still there 20 s later; resolves once it has exited. */
const stop = (child: childProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const kill = setTimeout(() => child.kill("SIGKILL"), 20_000)
    child.once("exit", () => {
      clearTimeout(kill)
      resume(Effect.void)
    })
    child.kill("SIGTERM")
  })
