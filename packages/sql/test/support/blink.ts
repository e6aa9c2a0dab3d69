/**
 * Tools for making PostgreSQL blink under a commit: an admin client that finds
 * the commit's backend in `pg_stat_activity` and ends it with
 * `pg_terminate_backend`, and a TCP proxy in front of the server that can drop
 * its connections and refuse new ones.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Layer, Redacted, Schedule } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import * as net from "node:net"
import { postgresUrl } from "./TestDatabase.js"

/** A PostgreSQL client of its own (not the one under test), for the test's own statements. */
export const adminClient: Effect.Effect<PgClient.PgClient, never, Scope.Scope> = Effect.map(
  Layer.build(PgClient.layer({ url: Redacted.make(postgresUrl) }).pipe(Layer.orDie)),
  (context) => Context.get(context, PgClient.PgClient)
)

/** An application name unique to one test, to find its backends in `pg_stat_activity`. */
export const uniqueApplicationName = () => `tether-blink-${crypto.randomBytes(4).toString("hex")}`

/**
 * Waits (polling every 10 ms, at most 10 s) until a backend of `applicationName` is running a statement that
 * matches `pattern` (SQL `LIKE`), then terminates it. Returns the statement it ended.
 */
export const terminateWhenRunning = (admin: PgClient.PgClient, applicationName: string, pattern: string) =>
  admin<{ readonly pid: number; readonly query: string }>`
    SELECT pid, query FROM pg_stat_activity
    WHERE application_name = ${applicationName} AND state = 'active' AND query LIKE ${pattern}`.pipe(
    Effect.orDie,
    Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail("not yet") : Effect.succeed(rows[0]))),
    Effect.retry({ schedule: Schedule.spaced("10 millis") }),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => `no backend ran ${pattern}` }),
    Effect.tap((backend) => admin`SELECT pg_terminate_backend(${backend.pid})`),
    Effect.map((backend) => backend.query),
    Effect.orDie
  )

/**
 * Holds the transaction-scoped advisory lock that commits on `recordsTable` take first, until the returned
 * `release` runs: a commit started meanwhile waits inside its transaction, before any write.
 */
export const holdCommitLock = (admin: PgClient.PgClient, recordsTable: string) =>
  Effect.gen(function* () {
    const taken = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    yield* admin
      .withTransaction(
        admin`SELECT pg_advisory_xact_lock(hashtext(${`tether:${recordsTable}`}))`.pipe(
          Effect.zipRight(Deferred.succeed(taken, undefined)),
          Effect.zipRight(Deferred.await(release))
        )
      )
      .pipe(Effect.orDie, Effect.forkScoped)
    yield* Deferred.await(taken)
    return Deferred.succeed(release, undefined)
  })

/** A TCP proxy to PostgreSQL that can drop what it carries and refuse what comes next. */
export interface Proxy {
  readonly port: number
  /** Closes every connection it carries and resets (closes at once) the next `count` it accepts. */
  readonly blink: (count: number) => Effect.Effect<void>
  /** How many connections it accepted, reset ones included. */
  readonly accepted: Effect.Effect<number>
}

export const proxy: Effect.Effect<Proxy, never, Scope.Scope> = Effect.gen(function* () {
  const target = new URL(postgresUrl)
  const open = new Set<net.Socket>()
  let toRefuse = 0
  let accepted = 0
  const server = net.createServer((client) => {
    accepted++
    if (toRefuse > 0) {
      toRefuse--
      client.destroy()
      return
    }
    const upstream = net.connect(Number(target.port || 5432), target.hostname)
    for (const [from, to] of [
      [client, upstream],
      [upstream, client]
    ] as const) {
      open.add(from)
      from.pipe(to)
      from.on("error", () => to.destroy())
      from.on("close", () => {
        open.delete(from)
        to.destroy()
      })
    }
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () =>
      Effect.async<void>((resume) => {
        for (const socket of open) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )
  const address = server.address() as net.AddressInfo
  return {
    port: address.port,
    blink: (count) =>
      Effect.sync(() => {
        toRefuse = count
        for (const socket of open) socket.destroy()
      }),
    accepted: Effect.sync(() => accepted)
  }
})

/** `postgresUrl` with its host and port replaced by the proxy's. */
export const viaProxy = (port: number) => {
  const url = new URL(postgresUrl)
  url.hostname = "127.0.0.1"
  url.port = String(port)
  return url.toString()
}
