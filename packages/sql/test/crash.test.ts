import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { StagedWrites } from "@tether/core"
import { Effect, Option, Schedule } from "effect"
import type { Scope } from "effect"
import * as childProcess from "node:child_process"
import * as path from "node:path"
import * as url from "node:url"
import { SqlStagedWrites } from "../src/index.js"
import type { Namespace } from "./support/TestDatabase.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"
import { runLikeCore } from "./support/runs.js"

const here = path.dirname(url.fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, "../../..")
const childScript = path.join(here, "fixtures", "crashChild.ts")

interface Child {
  readonly process: childProcess.ChildProcess
  readonly stderr: () => string
}

/** Starts the crash child; it is SIGKILLed when the scope closes if still alive. */
const spawnChild = (env: Record<string, string>): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const proc = childProcess.spawn(process.execPath, ["--import", "tsx", childScript], {
        cwd: repoRoot,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stderr = ""
      proc.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      return { process: proc, stderr: () => stderr }
    }),
    (child) =>
      Effect.sync(() => {
        if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGKILL")
      })
  )

const waitForLine = (child: Child, line: string) =>
  Effect.async<void, string>((resume) => {
    let output = ""
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8")
      if (output.split("\n").includes(line)) resume(Effect.void)
    }
    const onExit = (code: number | null) =>
      resume(Effect.fail(`the child exited (${code}) before printing ${line}: ${output} ${child.stderr()}`))
    child.process.stdout!.on("data", onData)
    child.process.once("exit", onExit)
    return Effect.sync(() => {
      child.process.stdout!.off("data", onData)
      child.process.off("exit", onExit)
    })
  }).pipe(
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => `no ${line} from the child: ${child.stderr()}` })
  )

const killHard = (child: Child) =>
  Effect.async<NodeJS.Signals | null>((resume) => {
    child.process.once("exit", (_code, signal) => resume(Effect.succeed(signal)))
    child.process.kill("SIGKILL")
  })

const childEnv = (ns: Namespace, orders: string, mode: "staged" | "committing", slow: string) => ({
  CRASH_DIALECT: ns.dialect,
  CRASH_LOCATION: ns.location,
  CRASH_RECORDS: ns.recordsTable,
  CRASH_ORDERS: orders,
  CRASH_MODE: mode,
  CRASH_SLOW: slow
})

/** Resolves once another connection holds the database's write lock (SQLite) or runs `marker` (PostgreSQL). */
const commitInProgress = (ns: Namespace, marker: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (ns.dialect === "pg") {
      return yield* sql<{ pid: number }>`SELECT pid FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE ${`%${marker}%`}`.pipe(
        Effect.map((rows) => Option.fromNullable(rows[0]?.pid)),
        Effect.flatten
      )
    }
    yield* sql.unsafe("PRAGMA busy_timeout = 0").unprepared
    const isLocked = yield* sql.unsafe("BEGIN IMMEDIATE").unprepared.pipe(
      Effect.zipRight(sql.unsafe("ROLLBACK").unprepared),
      Effect.as(false),
      Effect.catchAllDefect(() => Effect.succeed(true)),
      Effect.catchAll(() => Effect.succeed(true))
    )
    yield* sql.unsafe("PRAGMA busy_timeout = 5000").unprepared
    return isLocked ? 0 : yield* Effect.fail(new Error("not locked yet"))
  }).pipe(
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the child's commit never started" })
  )

/** Resolves once the child's PostgreSQL backend has gone (its transaction aborted by the server itself). */
const backendGone = (pid: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid}`.pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows[0]?.n === 0 }),
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => `backend ${pid} is still there` })
    )
  )

const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const ns = yield* TestNamespace
  const orders = ns.table("orders")
  yield* sql`CREATE TABLE ${sql(orders)} (id TEXT PRIMARY KEY)`
  const nothingOfTheChild = Effect.gen(function* () {
    expect(yield* SqlStagedWrites.snapshot).toEqual(new Map())
    expect(yield* sql`SELECT id FROM ${sql(orders)}`).toEqual([])
  })
  return { sql, ns, orders, nothingOfTheChild }
})

/** The database still works after the crash: a new run commits. */
const aNewRunCommits = Effect.gen(function* () {
  expect(yield* runLikeCore("after-crash", (tx) => tx.stage(StagedWrites.upsert("orders", "next", 1)))).toBe(1)
  expect(yield* SqlStagedWrites.list("orders")).toEqual([["next", 1]])
})

describeEachDatabase((db) => {
  it.live("a process killed (SIGKILL) mid-run, its writes staged, leaves nothing in the database", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { ns, orders, nothingOfTheChild } = yield* setup
        const child = yield* spawnChild(childEnv(ns, orders, "staged", ""))
        yield* waitForLine(child, "STAGED")
        yield* nothingOfTheChild
        expect(yield* killHard(child)).toBe("SIGKILL")
        yield* nothingOfTheChild
        yield* aNewRunCommits
      })
    ).pipe(Effect.provide(db.layer()))
  )

  it.live("a process killed (SIGKILL) in the middle of its commit transaction leaves nothing in the database", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { ns, orders, nothingOfTheChild, sql } = yield* setup
        const marker = `crash_marker_${ns.recordsTable}`
        // Long enough to be caught running; on PostgreSQL short enough to let the
        // server notice the dead client by itself soon after.
        const slow = `${ns.slowStatement(ns.dialect === "pg" ? 2 : 20)} /* ${marker} */`
        const child = yield* spawnChild(childEnv(ns, orders, "committing", slow))
        yield* waitForLine(child, "COMMITTING")
        const backend = yield* commitInProgress(ns, marker)
        // Ten upserts and an insert are applied inside the open transaction: readers see none of them.
        yield* nothingOfTheChild
        expect(yield* killHard(child)).toBe("SIGKILL")
        yield* nothingOfTheChild
        if (ns.dialect === "pg") yield* backendGone(backend)
        else expect(yield* sql`PRAGMA integrity_check`).toEqual([{ integrity_check: "ok" }])
        yield* nothingOfTheChild
        yield* aNewRunCommits
      })
    ).pipe(Effect.provide(db.layer()))
  )
})
