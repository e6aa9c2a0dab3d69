import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { StagedWrites } from "@tether/core"
import { Array as Arr, Clock, Deferred, Effect, Fiber, Option } from "effect"
import { SqlStagedWrites } from "../src/index.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"
import { runLikeCore } from "./support/runs.js"

const shortRuns = 50

describeEachDatabase((db) => {
  it.live("50 short runs all commit while a long run keeps its staged writes open, none waiting on it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const ns = yield* TestNamespace
      const orders = ns.table("orders")
      yield* sql`CREATE TABLE ${sql(orders)} (id TEXT PRIMARY KEY, run TEXT NOT NULL)`
      const insertOrder = (id: string) =>
        StagedWrites.statement(`INSERT INTO ${orders} (id, run) VALUES (${ns.param(1)}, ${ns.param(2)})`, [id, id])
      const staged = yield* StagedWrites.StagedWrites

      const elapsed = yield* Effect.scoped(
        Effect.gen(function* () {
          const long = yield* staged.begin("long")
          yield* long.stage(StagedWrites.upsert("shared", "latest", { run: "long" }))
          for (let i = 0; i < 100; i++) yield* long.stage(StagedWrites.upsert("long", `k${i}`, i))
          yield* long.stage(insertOrder("long"))

          const start = yield* Clock.currentTimeMillis
          // If a short run waited on the long one, this would never finish: the long
          // run commits only after it. The timeout turns such a hang into a clear failure.
          const counts = yield* Effect.forEach(
            Arr.range(1, shortRuns),
            (i) =>
              runLikeCore(`short-${i}`, (tx) =>
                Effect.all([
                  tx.stage(StagedWrites.upsert("short", `s${String(i).padStart(2, "0")}`, i)),
                  tx.stage(StagedWrites.upsert("shared", "latest", { run: `short-${i}` })),
                  tx.stage(insertOrder(`short-${i}`))
                ])
              ),
            { concurrency: "unbounded" }
          ).pipe(
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "the short runs waited on the long one" })
          )
          const elapsed = (yield* Clock.currentTimeMillis) - start

          // Every short run committed while the long one is still open and invisible.
          expect(counts).toEqual(Arr.replicate(3, shortRuns))
          expect((yield* SqlStagedWrites.list("short")).length).toBe(shortRuns)
          expect(yield* SqlStagedWrites.list("long")).toEqual([])
          expect(yield* SqlStagedWrites.read("shared", "latest")).not.toEqual(Option.some({ run: "long" }))
          const ids = yield* sql<{ id: string }>`SELECT id FROM ${sql(orders)}`
          expect(ids.length).toBe(shortRuns)

          expect(yield* Effect.uninterruptible(long.commit)).toBe(102)
          return elapsed
        })
      )
      expect((yield* SqlStagedWrites.list("long")).length).toBe(100)
      expect(yield* SqlStagedWrites.read("shared", "latest")).toEqual(Option.some({ run: "long" }))
      console.log(`[${db.name}] ${shortRuns} short runs committed in ${elapsed} ms while a long run was open`)
    }).pipe(Effect.provide(db.layer()))
  )

  it.live("control: a real database transaction held for a whole run would block a short run's commit", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const ns = yield* TestNamespace
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // What this package avoids: a run that opens its transaction at begin and
      // keeps it until the end (here it has written the key short runs also write).
      const naiveLongRun = yield* Effect.fork(
        sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO ${sql(ns.recordsTable)} (table_name, key, value) VALUES ('shared', 'latest', ${'"long"'})`
            yield* Deferred.succeed(holding, undefined)
            yield* Deferred.await(release)
          })
        )
      )
      yield* Deferred.await(holding)
      const shortRun = yield* Effect.fork(
        runLikeCore("short", (tx) => tx.stage(StagedWrites.upsert("shared", "latest", "short")))
      )
      yield* Effect.sleep("300 millis")
      expect(Option.isNone(yield* Fiber.poll(shortRun))).toBe(true)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(naiveLongRun)
      expect(yield* Fiber.join(shortRun)).toBe(1)
      expect(yield* SqlStagedWrites.read("shared", "latest")).toEqual(Option.some("short"))
    }).pipe(Effect.provide(db.layer()))
  )
})
