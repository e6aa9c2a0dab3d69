/**
 * `StagedWrites.expect` on SQLite and PostgreSQL: a commit checks each expectation inside its transaction, where it
 * stands among the run's writes; an unmet one fails the commit with `WriteConflictError` and applies nothing.
 * Concurrent read-modify-write runs that expect what they read, and retry on a conflict, never lose an update.
 */
import { expect, layer } from "@effect/vitest"
import { StagedWrites } from "@tether/core"
import { Effect, FastCheck as fc, Option, Schedule } from "effect"
import { SqlStagedWrites } from "../src/index.js"
import { describeEachDatabase, liveTest } from "./support/TestDatabase.js"
import { begin, runLikeCore, yieldTimes } from "./support/runs.js"

const commitNow = (runId: string, writes: ReadonlyArray<StagedWrites.Write>) =>
  runLikeCore(runId, (tx) => Effect.forEach(writes, tx.stage, { discard: true }))

describeEachDatabase((db) => {
  const test = liveTest(db)

  test("expectations that hold commit (key order does not matter, even in jsonb); an Expect sees earlier writes", () =>
    Effect.gen(function* () {
      yield* commitNow("setup", [StagedWrites.upsert("stock", "kettle", { sku: "k", count: 2, tags: ["a", "b"] })])
      const count = yield* runLikeCore("run-1", (tx) =>
        Effect.forEach(
          [
            StagedWrites.expect("stock", "kettle", Option.some({ tags: ["a", "b"], count: 2, sku: "k" })),
            StagedWrites.expect("stock", "grinder", Option.none()),
            StagedWrites.upsert("stock", "kettle", { sku: "k", count: 1, tags: ["a", "b"] }),
            StagedWrites.expect("stock", "kettle", Option.some({ count: 1, sku: "k", tags: ["a", "b"] })),
            StagedWrites.remove("stock", "kettle"),
            StagedWrites.expect("stock", "kettle", Option.none())
          ],
          tx.stage,
          { discard: true }
        )
      )
      expect(count).toBe(6)
      expect(yield* SqlStagedWrites.read("stock", "kettle")).toEqual(Option.none())
    }))

  test("a record committed by another run since it was read: WriteConflictError, nothing applied, writes kept", () =>
    Effect.gen(function* () {
      yield* commitNow("setup", [StagedWrites.upsert("stock", "kettle", { count: 2 })])
      const result = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-slow")
          const read = yield* SqlStagedWrites.read("stock", "kettle")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { item: "kettle" }))
          yield* tx.stage(StagedWrites.expect("stock", "kettle", read))
          yield* tx.stage(StagedWrites.upsert("stock", "kettle", { count: 1 }))
          yield* commitNow("run-fast", [StagedWrites.upsert("stock", "kettle", { count: 1 })])
          const conflict = yield* Effect.flip(tx.commit)
          const absent = yield* Effect.scoped(
            Effect.flatMap(begin("run-new"), (other) =>
              Effect.zipRight(
                other.stage(StagedWrites.expect("stock", "kettle", Option.none())),
                Effect.flip(other.commit)
              )
            )
          )
          return { conflict, absent, rolledBack: yield* tx.rollback }
        })
      )
      expect(result.conflict).toBeInstanceOf(StagedWrites.WriteConflictError)
      expect(result.conflict).toMatchObject({ table: "stock", key: "kettle" })
      expect(result.conflict.message).toContain("run run-slow: stock/kettle")
      expect(result.absent).toMatchObject({ _tag: "WriteConflictError", key: "kettle" })
      expect(result.rolledBack).toBe(3)
      expect(yield* SqlStagedWrites.list("orders")).toEqual([])
      expect(yield* SqlStagedWrites.read("stock", "kettle")).toEqual(Option.some({ count: 1 }))
    }))

  test("the expectation is the value as it was staged: changing the object afterwards changes nothing", () =>
    Effect.gen(function* () {
      yield* commitNow("setup", [StagedWrites.upsert("stock", "kettle", { count: 2 })])
      const count = yield* runLikeCore("run-1", (tx) =>
        Effect.gen(function* () {
          const expected = { count: 2 }
          yield* tx.stage(StagedWrites.expect("stock", "kettle", Option.some(expected)))
          expected.count = 3
        })
      )
      expect(count).toBe(1)
    }))

  test("an expected value with no JSON form fails at stage", () =>
    Effect.gen(function* () {
      const error = yield* Effect.scoped(
        Effect.flatMap(begin("run-1"), (tx) => Effect.flip(tx.stage(StagedWrites.expect("t", "k", Option.some(1n)))))
      )
      expect(error).toMatchObject({ _tag: "StagedWriteError", operation: "stage" })
    }))

  layer(db.layer(), { excludeTestServices: true })((it) => {
    it.effect.prop(
      "concurrent runs that increment a counter, expect what they read and retry on a conflict lose no update",
      [fc.array(fc.nat(4), { minLength: 2, maxLength: 6 })],
      ([pauses]) =>
        Effect.gen(function* () {
          yield* commitNow("reset", [StagedWrites.upsert("counters", "c", { n: 0 })])
          const increment = (runId: string, pause: number) =>
            runLikeCore(runId, (tx) =>
              Effect.gen(function* () {
                const read = yield* SqlStagedWrites.read("counters", "c")
                const n = Option.match(read, { onNone: () => 0, onSome: (value) => (value as { n: number }).n })
                // Other runs read, and maybe commit, meanwhile.
                yield* yieldTimes(pause)
                yield* tx.stage(StagedWrites.expect("counters", "c", read))
                yield* tx.stage(StagedWrites.upsert("counters", "c", { n: n + 1 }))
              })
            ).pipe(
              Effect.retry({
                while: (error) => error._tag === "WriteConflictError",
                schedule: Schedule.recurs(pauses.length * 4)
              })
            )
          yield* Effect.forEach(pauses, (pause, index) => increment(`run-${index}`, pause), {
            concurrency: "unbounded",
            discard: true
          })
          expect(yield* SqlStagedWrites.read("counters", "c")).toEqual(Option.some({ n: pauses.length }))
        }),
      { fastCheck: { numRuns: 40 } }
    )
  })
})
