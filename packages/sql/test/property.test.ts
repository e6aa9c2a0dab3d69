import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { StagedWrites } from "@tether/core"
import { Effect, Exit, FastCheck as fc, Fiber } from "effect"
import { SqlStagedWrites } from "../src/index.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"
import { runLikeCore, yieldTimes } from "./support/runs.js"

interface WritePlan {
  readonly kind: "upsert" | "delete"
  readonly table: string
  readonly key: string
  readonly n: number
  /** Scheduler turns to let other runs go before the next write. */
  readonly pause: number
}

interface RunPlan {
  readonly writes: ReadonlyArray<WritePlan>
  /** How the run's body ends: it succeeds (and commits), fails, ends its scope without a call, or hangs. */
  readonly ending: "commit" | "fail" | "abandon" | "hang"
  /** Interrupt the run after this many scheduler turns (a hanging run is always interrupted). */
  readonly interruptAfter: number | null
}

const writeArb: fc.Arbitrary<WritePlan> = fc.record({
  kind: fc.constantFrom<WritePlan["kind"]>("upsert", "upsert", "delete"),
  table: fc.constantFrom("orders", "carts"),
  key: fc.constantFrom("k1", "k2", "k3", "k4"),
  n: fc.integer({ min: 0, max: 999 }),
  pause: fc.nat(3)
})

const runArb: fc.Arbitrary<RunPlan> = fc
  .record({
    writes: fc.array(writeArb, { maxLength: 6 }),
    ending: fc.constantFrom<RunPlan["ending"]>("commit", "commit", "fail", "abandon", "hang"),
    interruptAfter: fc.option(fc.nat(40), { nil: null, freq: 3 })
  })
  .map((run) => (run.ending === "hang" && run.interruptAfter === null ? { ...run, interruptAfter: 5 } : run))

const scenarioArb = fc.array(runArb, { minLength: 1, maxLength: 5 })

const valueOf = (runId: string, write: WritePlan) => ({ run: runId, n: write.n })

const toWrite = (runId: string, write: WritePlan): StagedWrites.Write =>
  write.kind === "upsert"
    ? StagedWrites.upsert(write.table, write.key, valueOf(runId, write))
    : StagedWrites.remove(write.table, write.key)

/** Applies the writes of the committed runs, in commit order, to an empty store. */
const model = (runs: ReadonlyArray<RunPlan>, commitOrder: ReadonlyArray<string>): StagedWrites.Snapshot => {
  const tables = new Map<string, Map<string, unknown>>()
  for (const runId of commitOrder) {
    for (const write of runs[Number(runId.slice("run-".length))]!.writes) {
      const table = tables.get(write.table) ?? new Map<string, unknown>()
      if (write.kind === "upsert") table.set(write.key, valueOf(runId, write))
      else table.delete(write.key)
      if (table.size > 0) tables.set(write.table, table)
      else tables.delete(write.table)
    }
  }
  return tables
}

describeEachDatabase((db) => {
  layer(db.layer(), { excludeTestServices: true })((it) => {
    it.effect.prop(
      "after concurrent runs commit, fail or are interrupted, the database equals the committed runs' writes applied in commit order",
      [scenarioArb],
      ([runs]) =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const ns = yield* TestNamespace
          const log = ns.table("commit_log")
          yield* ns.dialect === "pg"
            ? sql`CREATE TABLE IF NOT EXISTS ${sql(log)} (id bigserial PRIMARY KEY, run_id text NOT NULL)`
            : sql`CREATE TABLE IF NOT EXISTS ${sql(log)} (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL)`
          yield* sql`DELETE FROM ${sql(log)}`
          yield* sql`DELETE FROM ${sql(ns.recordsTable)}`

          // The last write of a committing run records it in the log, inside the
          // commit transaction: the log's ids give the order the commits applied in.
          const logCommit = (runId: string) =>
            StagedWrites.statement(`INSERT INTO ${log} (run_id) VALUES (${ns.param(1)})`, [runId])

          const runFiber = (run: RunPlan, runId: string) => {
            const stageAll = (tx: StagedWrites.Transaction) =>
              Effect.forEach(
                run.writes,
                (write) => Effect.zipRight(tx.stage(toWrite(runId, write)), yieldTimes(write.pause)),
                {
                  discard: true
                }
              )
            if (run.ending === "abandon") {
              return Effect.scoped(
                Effect.flatMap(StagedWrites.StagedWrites, (staged) => Effect.flatMap(staged.begin(runId), stageAll))
              )
            }
            return runLikeCore(runId, (tx) =>
              Effect.gen(function* () {
                yield* stageAll(tx)
                if (run.ending === "fail") return yield* Effect.fail("the tool failed")
                if (run.ending === "hang") return yield* Effect.never
                yield* tx.stage(logCommit(runId))
              })
            )
          }

          const fibers = yield* Effect.forEach(runs, (run, index) => Effect.fork(runFiber(run, `run-${index}`)))
          yield* Effect.forEach(
            runs,
            (run, index) =>
              run.interruptAfter === null
                ? Effect.void
                : Effect.zipRight(yieldTimes(run.interruptAfter), Fiber.interrupt(fibers[index]!)),
            { concurrency: "unbounded", discard: true }
          )
          const exits = yield* Effect.forEach(fibers, Fiber.await)

          const commitOrder = (yield* sql<{ run_id: string }>`SELECT run_id FROM ${sql(log)} ORDER BY id`).map(
            (row) => row.run_id
          )
          expect(new Set(commitOrder).size).toBe(commitOrder.length)
          runs.forEach((run, index) => {
            const runId = `run-${index}`
            if (run.ending !== "commit") expect(commitOrder).not.toContain(runId)
            if (run.ending === "commit" && run.interruptAfter === null) {
              expect(Exit.isSuccess(exits[index]!)).toBe(true)
              expect(commitOrder).toContain(runId)
            }
          })
          expect(yield* SqlStagedWrites.snapshot).toEqual(model(runs, commitOrder))
        }),
      { fastCheck: { numRuns: 150 } }
    )
  })
})
