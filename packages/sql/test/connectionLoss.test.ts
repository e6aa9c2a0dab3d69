/**
 * PostgreSQL blinks under a commit: its backend is terminated (`pg_terminate_backend`) before any write, in the
 * middle of the writes and at COMMIT, and a proxy in front of it drops and refuses connections; SQLite's file is
 * locked by another connection. A commit retries
 * what failed before the COMMIT was sent (nothing was applied), within a bound; a connection lost at COMMIT is
 * `CommitOutcomeUnknownError`. Never a defect, never a partial commit, never a write applied twice.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRun, RunEvent, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Schedule,
  Schema,
  Stream
} from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SqlStagedWrites } from "../src/index.js"
import * as Blink from "./support/blink.js"
import { postgres, postgresUrl } from "./support/TestDatabase.js"

/** Retries quick enough for a test, bounded: 5 attempts in all. */
const commitRetry = Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(4)))

interface Database {
  readonly applicationName: string
  readonly recordsTable: string
  /** A table of this test, dropped afterwards: `probe` -> `probe_<suffix>`. */
  readonly table: (base: string) => string
  readonly admin: PgClient.PgClient
}

/**
 * `StagedWrites` on its own PostgreSQL pool (at `url`, named by a unique application name), in the test's scope;
 * its tables are dropped when the scope closes.
 */
const database = (
  url: string = postgresUrl
): Effect.Effect<
  Database & { readonly services: Layer.Layer<StagedWrites.StagedWrites | SqlClient.SqlClient> },
  never,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const suffix = `${process.pid}_${crypto.randomBytes(4).toString("hex")}`
    const applicationName = Blink.uniqueApplicationName()
    const recordsTable = `tether_records_blink_${suffix}`
    const tables = [recordsTable]
    const admin = yield* Blink.adminClient
    yield* Effect.addFinalizer(() =>
      Effect.forEach(tables, (name) => admin`DROP TABLE IF EXISTS ${admin(name)}`, { discard: true }).pipe(
        Effect.ignore
      )
    )
    const built = yield* Layer.build(
      SqlStagedWrites.layer({ recordsTable, commitRetry }).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), applicationName })),
        Layer.orDie
      )
    )
    const table = (base: string) => {
      const name = `${base}_${suffix}`
      tables.push(name)
      return name
    }
    return { applicationName, recordsTable, table, admin, services: Layer.succeedContext(built) }
  })

/** A table whose rows count how many times a commit's statement ran (a write that is not idempotent). */
const probeTable = (db: Database) =>
  Effect.gen(function* () {
    const probe = db.table("probe")
    yield* db.admin`CREATE TABLE ${db.admin(probe)} (id TEXT NOT NULL)`
    return {
      insert: StagedWrites.statement(`INSERT INTO ${probe} (id) VALUES ($1)`, ["o-1"]),
      rows: Effect.map(db.admin<{ readonly n: string }>`SELECT count(*) AS n FROM ${db.admin(probe)}`, (rows) =>
        Number(rows[0]!.n)
      ).pipe(Effect.orDie),
      /** From now on a COMMIT with a row inserted takes `seconds` (a deferred constraint trigger sleeps). */
      slowCommit: (seconds: number) =>
        Effect.gen(function* () {
          const fn = db.table("slow_commit")
          yield* db.admin.unsafe(
            `CREATE FUNCTION ${fn}() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(${seconds}); RETURN NULL; END $$ LANGUAGE plpgsql`
          )
          yield* Effect.addFinalizer(() =>
            db.admin.unsafe(`DROP FUNCTION IF EXISTS ${fn}() CASCADE`).pipe(Effect.ignore)
          )
          yield* db.admin.unsafe(
            `CREATE CONSTRAINT TRIGGER ${fn} AFTER INSERT ON ${probe} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${fn}()`
          )
        }).pipe(Effect.orDie)
    }
  }).pipe(Effect.orDie)

const order = StagedWrites.upsert("orders", "o-1", { id: "o-1", total: 3 })

/** Stages `writes` in a run's transaction and commits it; the transaction stays usable for a look afterwards. */
const stageAndCommit = (writes: ReadonlyArray<StagedWrites.Write>) =>
  Effect.gen(function* () {
    const staged = yield* StagedWrites.StagedWrites
    const tx = yield* staged.begin("run-blink")
    yield* Effect.forEach(writes, tx.stage, { discard: true })
    const committed = yield* Effect.exit(Effect.uninterruptible(tx.commit))
    return { committed, tx }
  })

const recordOf = (db: Database) =>
  Effect.map(
    db.admin<{ readonly value: unknown }>`SELECT value FROM ${db.admin(db.recordsTable)} WHERE key = 'o-1'`,
    (rows) => rows.map((row) => row.value)
  ).pipe(Effect.orDie)

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()

const describePg = postgres.isAvailable ? describe : describe.skip

describePg(`PostgreSQL blinks under a commit (${postgresUrl})`, () => {
  it.live("a backend terminated while the commit waits for its lock (before any write): retried, lands once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* database()
        const probe = yield* probeTable(db)
        const release = yield* Blink.holdCommitLock(db.admin, db.recordsTable)
        const commit = yield* Effect.fork(Effect.provide(stageAndCommit([order, probe.insert]), db.services))
        const ended = yield* Blink.terminateWhenRunning(db.admin, db.applicationName, "%pg_advisory_xact_lock%")
        expect(ended).toMatch(/pg_advisory_xact_lock/)
        yield* release
        const { committed } = yield* Fiber.join(commit)
        expect(committed).toStrictEqual(Exit.succeed(2))
        expect(yield* probe.rows).toBe(1)
        expect(yield* recordOf(db)).toEqual([{ id: "o-1", total: 3 }])
      })
    )
  )

  it.live(
    "a backend terminated mid-transaction (after a write, in a slow statement): retried, lands once, not twice",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* database()
          const probe = yield* probeTable(db)
          const slow = StagedWrites.statement("SELECT pg_sleep(0.4)")
          const commit = yield* Effect.fork(Effect.provide(stageAndCommit([order, probe.insert, slow]), db.services))
          yield* Blink.terminateWhenRunning(db.admin, db.applicationName, "%pg_sleep(0.4)%")
          const { committed } = yield* Fiber.join(commit)
          expect(committed).toStrictEqual(Exit.succeed(3))
          expect(yield* probe.rows).toBe(1)
          expect(yield* recordOf(db)).toEqual([{ id: "o-1", total: 3 }])
        })
      )
  )

  it.live("connections reset before the transaction (a proxy refuses two): retried, lands once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const proxy = yield* Blink.proxy
        const db = yield* database(Blink.viaProxy(proxy.port))
        const probe = yield* probeTable(db)
        yield* proxy.blink(2)
        // Let the pool see its idle connections close.
        yield* Effect.sleep("200 millis")
        const before = yield* proxy.accepted
        const { committed } = yield* Effect.provide(stageAndCommit([order, probe.insert]), db.services)
        expect(committed).toStrictEqual(Exit.succeed(2))
        expect((yield* proxy.accepted) - before).toBeGreaterThanOrEqual(3)
        expect(yield* probe.rows).toBe(1)
      })
    )
  )

  it.live("a database unreachable for longer than the retries: a typed StagedWriteError, nothing applied", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const proxy = yield* Blink.proxy
        const db = yield* database(Blink.viaProxy(proxy.port))
        const probe = yield* probeTable(db)
        yield* proxy.blink(1000)
        yield* Effect.sleep("200 millis")
        const before = yield* proxy.accepted
        const { committed, tx } = yield* Effect.provide(stageAndCommit([order, probe.insert]), db.services)
        const error = failureOf(committed)
        expect(Option.map(error, (e) => e._tag)).toStrictEqual(Option.some("StagedWriteError"))
        expect(Option.getOrThrow(error).message).toMatch(/\(5 attempts\), nothing was applied/)
        expect((yield* proxy.accepted) - before).toBe(5)
        // The writes stay staged: a rollback discards them.
        expect(yield* tx.rollback).toBe(2)
        expect(yield* probe.rows).toBe(0)
        expect(yield* recordOf(db)).toEqual([])
      })
    )
  )

  it.live("a backend terminated at COMMIT: CommitOutcomeUnknownError, not retried, nothing claimed rolled back", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* database()
        const probe = yield* probeTable(db)
        yield* probe.slowCommit(0.5)
        const commit = yield* Effect.fork(Effect.provide(stageAndCommit([order, probe.insert]), db.services))
        expect(yield* Blink.terminateWhenRunning(db.admin, db.applicationName, "COMMIT")).toBe("COMMIT")
        const { committed, tx } = yield* Fiber.join(commit)
        const error = Option.getOrThrow(failureOf(committed))
        expect(error).toBeInstanceOf(StagedWrites.CommitOutcomeUnknownError)
        expect(error).toMatchObject({ writes: 2, message: expect.stringMatching(/may or may not have been applied/) })
        // Not retried: a second attempt would have committed (the test ends one backend only).
        expect(yield* probe.rows).toBe(0)
        expect(yield* tx.rollback).toBe(0)
        expect(failureOf(yield* Effect.exit(tx.commit)).pipe(Option.map((e) => e._tag))).toStrictEqual(
          Option.some("StagedWriteError")
        )
      })
    )
  )

  it.live("an agent run whose commit loses its connection at COMMIT fails with CommitOutcomeUnknownError", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* database()
        const probe = yield* probeTable(db)
        yield* probe.slowCommit(0.5)
        const tool = Tool.make({
          name: "record_order",
          description: "Records an order",
          input: Schema.Struct({ id: Schema.String }),
          output: Schema.String,
          handler: () => Effect.as(Effect.zipRight(AgentRun.stage(order), AgentRun.stage(probe.insert)), "recorded")
        })
        const script = [[ScriptedModel.toolUse("record_order", { id: "o-1" })], ScriptedModel.text("Done.")]
        const run = yield* AgentRun.start(Agent.make({ name: "shop", tools: [tool] }), "buy o-1").pipe(
          Effect.provide(Layer.merge(db.services, ScriptedModel.layer(script)))
        )
        yield* Blink.terminateWhenRunning(db.admin, db.applicationName, "COMMIT")
        const outcome = yield* run.outcome
        expect(outcome).toMatchObject({ _tag: "Failed", writesRolledBack: 0 })
        if (outcome._tag !== "Failed") return
        expect(Cause.isDie(outcome.cause)).toBe(false)
        expect(Option.map(Cause.failureOption(outcome.cause), (e) => e._tag)).toStrictEqual(
          Option.some("CommitOutcomeUnknownError")
        )
        expect(outcome.error).toMatch(/^CommitOutcomeUnknownError: .*may or may not have been applied/)
        const events = Chunk.toReadonlyArray(yield* Stream.runCollect(run.events))
        const last = events.at(-1)
        expect(last?._tag).toBe("RunFailed")
        expect((last as RunEvent.RunFailed).error).toMatch(/^CommitOutcomeUnknownError/)
      })
    )
  )
})

describe("SQLite: a file locked by another connection", () => {
  it.live("a commit that finds the file locked past the busy timeout (SQLITE_BUSY) is retried and lands once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-busy-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const filename = path.join(dir, "tether.db")
        const services = Layer.succeedContext(
          yield* Layer.build(SqlStagedWrites.layerSqlite({ filename, commitRetry }).pipe(Layer.orDie))
        )
        // Another connection to the same file holds its write lock until `release`.
        const other = Context.get(
          yield* Layer.build(SqliteClient.layer({ filename }).pipe(Layer.orDie)),
          SqlClient.SqlClient
        )
        yield* other`CREATE TABLE holder (id INTEGER)`.pipe(Effect.orDie)
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        yield* other
          .withTransaction(
            other`INSERT INTO holder VALUES (1)`.pipe(
              Effect.zipRight(Deferred.succeed(locked, undefined)),
              Effect.zipRight(Deferred.await(release))
            )
          )
          .pipe(Effect.orDie, Effect.forkScoped)
        yield* Deferred.await(locked)
        // SQLite waits for the lock synchronously (its busy timeout, 5 s): this release can only run once the first
        // attempt has failed with SQLITE_BUSY, between it and the retry.
        const releasing = yield* Deferred.make<void>()
        yield* Effect.forkScoped(
          Deferred.succeed(releasing, undefined).pipe(
            Effect.zipRight(Effect.sleep("200 millis")),
            Effect.zipRight(Deferred.succeed(release, undefined))
          )
        )
        yield* Deferred.await(releasing)
        const { committed } = yield* Effect.provide(stageAndCommit([order]), services)
        expect(committed).toStrictEqual(Exit.succeed(1))
        const stored = yield* Effect.provide(SqlStagedWrites.read("orders", "o-1"), services)
        expect(stored).toStrictEqual(Option.some({ id: "o-1", total: 3 }))
      })
    )
  )
})
