import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { StagedWrites } from "@tether/core"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { ConfigProvider, Effect, Fiber, Layer, Option, Ref, Schedule, String } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SqlStagedWrites } from "../src/index.js"
import { describeEachDatabase, liveTest, postgres, postgresUrl, TestNamespace } from "./support/TestDatabase.js"
import { begin, yieldTimes } from "./support/runs.js"

const { Records } = SqlStagedWrites

/** A user table for `Statement` writes: `id` is its primary key. */
const createOrders = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const ns = yield* TestNamespace
  const orders = ns.table("orders")
  yield* sql`CREATE TABLE ${sql(orders)} (id TEXT PRIMARY KEY, total INTEGER NOT NULL)`
  const insertOrder = (id: string, total: number) =>
    StagedWrites.statement(`INSERT INTO ${orders} (id, total) VALUES (${ns.param(1)}, ${ns.param(2)})`, [id, total])
  const orderIds = sql<{ id: string }>`SELECT id FROM ${sql(orders)} ORDER BY id`.pipe(
    Effect.map((rows) => rows.map((row) => row.id))
  )
  return { orders, insertOrder, orderIds }
})

describeEachDatabase((db) => {
  const test = liveTest(db)

  test("commit applies every staged write in order and returns how many there were", () =>
    Effect.gen(function* () {
      const { insertOrder, orderIds } = yield* createOrders
      const count = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
          yield* tx.stage(StagedWrites.upsert("orders", "o-2", { total: 4 }))
          yield* tx.stage(StagedWrites.remove("orders", "o-1"))
          yield* tx.stage(StagedWrites.upsert("orders", "o-2", { total: 5, items: ["a", "b"] }))
          yield* tx.stage(insertOrder("o-2", 5))
          return yield* Effect.uninterruptible(tx.commit)
        })
      )
      expect(count).toBe(5)
      expect(yield* SqlStagedWrites.list("orders")).toEqual([["o-2", { total: 5, items: ["a", "b"] }]])
      expect(yield* orderIds).toEqual(["o-2"])
    }))

  test("readers see nothing of a run until it commits, then all of it", () =>
    Effect.gen(function* () {
      const { insertOrder, orderIds } = yield* createOrders
      yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
          yield* tx.stage(insertOrder("o-1", 3))
          expect(yield* SqlStagedWrites.read("orders", "o-1")).toEqual(Option.none())
          expect(yield* orderIds).toEqual([])
          yield* Effect.uninterruptible(tx.commit)
          expect(yield* SqlStagedWrites.read("orders", "o-1")).toEqual(Option.some({ total: 3 }))
          expect(yield* orderIds).toEqual(["o-1"])
        })
      )
    }))

  test("rollback discards every staged write, reports how many, and a later commit applies nothing", () =>
    Effect.gen(function* () {
      const { insertOrder, orderIds } = yield* createOrders
      const [discarded, committed] = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
          yield* tx.stage(StagedWrites.remove("orders", "o-0"))
          yield* tx.stage(insertOrder("o-1", 3))
          const discarded = yield* tx.rollback
          return [discarded, yield* tx.commit] as const
        })
      )
      expect([discarded, committed]).toEqual([3, 0])
      expect(yield* SqlStagedWrites.snapshot).toEqual(new Map())
      expect(yield* orderIds).toEqual([])
    }))

  test("closing the scope without commit or rollback leaves the database unchanged", () =>
    Effect.gen(function* () {
      const { insertOrder, orderIds } = yield* createOrders
      yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
          yield* tx.stage(insertOrder("o-1", 3))
        })
      )
      expect(yield* SqlStagedWrites.snapshot).toEqual(new Map())
      expect(yield* orderIds).toEqual([])
    }))

  test("a statement failing at commit fails with StagedWriteError and applies none of the earlier writes", () =>
    Effect.gen(function* () {
      const ns = yield* TestNamespace
      const { insertOrder, orderIds } = yield* createOrders
      yield* Effect.scoped(
        Effect.flatMap(begin("setup"), (tx) =>
          Effect.zipRight(tx.stage(StagedWrites.upsert("orders", "o-1", "before")), tx.commit)
        )
      )
      const missing = ns.table("missing")
      const error = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", "after"))
          yield* tx.stage(StagedWrites.upsert("orders", "o-2", "new"))
          yield* tx.stage(insertOrder("o-2", 5))
          yield* tx.stage(StagedWrites.statement(`INSERT INTO ${missing} (id) VALUES (${ns.param(1)})`, ["x"]))
          yield* tx.stage(StagedWrites.upsert("orders", "o-3", "never reached"))
          return yield* Effect.flip(Effect.uninterruptible(tx.commit))
        })
      )
      expect(error).toBeInstanceOf(StagedWrites.StagedWriteError)
      expect(error).toMatchObject({ operation: "commit" })
      expect(error.message).toContain(missing)
      expect(error.message).toMatch(/no such table|does not exist/)
      expect(error.message).toContain("write 4 of 5")
      expect(yield* SqlStagedWrites.list("orders")).toEqual([["o-1", "before"]])
      expect(yield* orderIds).toEqual([])
    }))

  test("a constraint violation at commit applies nothing", () =>
    Effect.gen(function* () {
      const { insertOrder, orderIds } = yield* createOrders
      const error = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(insertOrder("o-1", 1))
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 1 }))
          yield* tx.stage(insertOrder("o-1", 2))
          return yield* Effect.flip(Effect.uninterruptible(tx.commit))
        })
      )
      expect(error).toMatchObject({ _tag: "StagedWriteError", operation: "commit" })
      expect(error.message).toMatch(/UNIQUE constraint failed|duplicate key value/)
      expect(yield* SqlStagedWrites.snapshot).toEqual(new Map())
      expect(yield* orderIds).toEqual([])
    }))

  test("a failed commit keeps the writes staged: it can be retried, or rolled back with their count", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const ns = yield* TestNamespace
      const audit = ns.table("audit")
      const insertAudit = StagedWrites.statement(`INSERT INTO ${audit} (note) VALUES (${ns.param(1)})`, ["o-1"])
      const [retried, discarded] = yield* Effect.scoped(
        Effect.gen(function* () {
          const first = yield* begin("run-1")
          yield* first.stage(StagedWrites.upsert("orders", "o-1", 1))
          yield* first.stage(insertAudit)
          yield* Effect.flip(first.commit)
          yield* sql`CREATE TABLE ${sql(audit)} (note TEXT NOT NULL)`
          const retried = yield* first.commit

          const second = yield* begin("run-2")
          yield* second.stage(StagedWrites.upsert("orders", "o-2", 2))
          yield* second.stage(StagedWrites.statement(`INSERT INTO ${audit} (nope) VALUES (1)`))
          yield* Effect.flip(second.commit)
          return [retried, yield* second.rollback] as const
        })
      )
      expect([retried, discarded]).toEqual([2, 2])
      expect(yield* SqlStagedWrites.list("orders")).toEqual([["o-1", 1]])
    }))

  test("staging after the commit fails instead of dropping the write", () =>
    Effect.gen(function* () {
      const error = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", 1))
          yield* tx.commit
          return yield* Effect.flip(tx.stage(StagedWrites.upsert("orders", "o-2", 2)))
        })
      )
      expect(error.operation).toBe("stage")
      expect(error.message).toContain("already committed")
      expect(yield* SqlStagedWrites.list("orders")).toEqual([["o-1", 1]])
    }))

  test("a value with no JSON form fails at stage, and the staged value is the one at stage time", () =>
    Effect.gen(function* () {
      const circular: Record<string, unknown> = {}
      circular.self = circular
      yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          for (const value of [undefined, 1n, circular, () => 1]) {
            const error = yield* Effect.flip(tx.stage(StagedWrites.upsert("orders", "bad", value)))
            expect(error.operation).toBe("stage")
          }
          const order = { total: 3 }
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", order))
          order.total = 99
          expect(yield* tx.commit).toBe(1)
        })
      )
      expect(yield* SqlStagedWrites.list("orders")).toEqual([["o-1", { total: 3 }]])
    }))

  test("interrupting a commit while it runs lets it finish, or applies nothing if it had not started", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const ns = yield* TestNamespace
      const { insertOrder, orderIds } = yield* createOrders
      const writesPerSide = 200
      // On PostgreSQL we wait until the slow statement is running; SQLite runs
      // statements synchronously, so we interrupt after k scheduler turns instead.
      const points = ns.dialect === "pg" ? [-1] : [0, 1, 2, 3, 5, 8, 13, 21, 34]
      const outcomes: Array<string> = []
      for (const point of points) {
        const table = `orders-${point}`
        const marker = `tether_marker_${point}_${ns.recordsTable}`
        const slow = `${ns.slowStatement(ns.dialect === "pg" ? 1 : 0.1)} /* ${marker} */`
        const started = yield* Ref.make(false)
        const applied = yield* Effect.scoped(
          Effect.gen(function* () {
            const tx = yield* begin(`run-${point}`)
            for (let i = 0; i < writesPerSide; i++) yield* tx.stage(StagedWrites.upsert(table, `a-${i}`, i))
            yield* tx.stage(insertOrder(`o${point}`, point))
            yield* tx.stage(StagedWrites.statement(slow))
            for (let i = 0; i < writesPerSide; i++) yield* tx.stage(StagedWrites.upsert(table, `b-${i}`, i))
            const fiber = yield* Effect.fork(Effect.uninterruptible(Effect.zipRight(Ref.set(started, true), tx.commit)))
            if (point === -1) {
              yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE ${`%${marker}%`}`.pipe(
                Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (rows) => (rows[0]?.n ?? 0) > 0 }),
                Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "the slow statement never started" })
              )
            } else {
              yield* yieldTimes(point)
            }
            yield* Fiber.interrupt(fiber)
            return (yield* SqlStagedWrites.list(table)).length
          })
        )
        const hasStarted = yield* Ref.get(started)
        const orderRows = (yield* orderIds).filter((id) => id === `o${point}`).length
        expect(applied).toBe(hasStarted ? 2 * writesPerSide : 0)
        expect(orderRows).toBe(hasStarted ? 1 : 0)
        outcomes.push(`${point}:${hasStarted ? "finished" : "not started"}`)
      }
      if (ns.dialect === "pg") expect(outcomes).toEqual(["-1:finished"])
      console.log(`[${db.name}] interrupt during commit: ${outcomes.join(", ")}`)
    }))
})

it.live("layerConfig uses SQLite from TETHER_SQLITE_FILE unless DATABASE_URL is a postgres URL", () =>
  Effect.gen(function* () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-sql-config-"))
    const filename = path.join(dir, "nested", "tether.db")
    const dialectWith = (env: Record<string, string>) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Records
        return sql.onDialectOrElse({ sqlite: () => "sqlite", pg: () => "pg", orElse: () => "other" })
      }).pipe(
        Effect.provide(SqlStagedWrites.layerConfig),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      )
    expect(yield* dialectWith({ TETHER_SQLITE_FILE: filename })).toBe("sqlite")
    expect(fs.existsSync(filename)).toBe(true)
    expect(yield* dialectWith({ TETHER_SQLITE_FILE: filename, DATABASE_URL: "mysql://nope" })).toBe("sqlite")
    if (postgres.isAvailable) {
      const table = `tether_records_config_${process.pid}`
      expect(yield* dialectWith({ DATABASE_URL: postgresUrl, TETHER_RECORDS_TABLE: table })).toBe("pg")
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DROP TABLE IF EXISTS ${sql(table)}`
      }).pipe(Effect.provide(SqlStagedWrites.layerPg({ url: postgresUrl, recordsTable: table })))
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })
)

it.live("works on a client that transforms column names", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-sql-transform-"))
  const client = SqliteClient.layer({
    filename: path.join(dir, "tether.db"),
    transformResultNames: String.snakeToCamel,
    transformQueryNames: String.camelToSnake
  })
  return Effect.gen(function* () {
    const count = yield* Effect.scoped(
      Effect.gen(function* () {
        const tx = yield* begin("run-1")
        yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
        return yield* tx.commit
      })
    )
    expect(count).toBe(1)
    expect(yield* SqlStagedWrites.snapshot).toEqual(new Map([["orders", new Map([["o-1", { total: 3 }]])]]))
  }).pipe(
    Effect.provide(SqlStagedWrites.layer().pipe(Layer.provideMerge(client))),
    Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  )
})
