import { isDeepStrictEqual } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Fiber, Option, Schema, TestClock } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const begin = (runId: string) => Effect.flatMap(StagedWrites.StagedWrites, (staged) => staged.begin(runId))
const snapshot = Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)
const commitNow = (writes: ReadonlyArray<StagedWrites.Write>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const tx = yield* begin("setup")
      yield* Effect.forEach(writes, tx.stage, { discard: true })
      return yield* tx.commit
    })
  )

/** The reference for "equal as JSON": deep equality of the values' JSON forms (key order never matters to it). */
const sameJson = (a: unknown, b: unknown): boolean =>
  isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)))

/** The same JSON value with every object's keys in reverse order. */
const reversedKeys = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(reversedKeys)
    : typeof value === "object" && value !== null
      ? Object.fromEntries(
          Object.entries(value)
            .reverse()
            .map(([k, v]) => [k, reversedKeys(v)])
        )
      : value

describe("StagedWrites.expect", () => {
  it("meetsExpectation is equality as JSON, whatever the key order (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 4 }), (a, b) => {
        const some = Option.some
        expect(StagedWrites.meetsExpectation(some(a), some(reversedKeys(a)))).toBe(true)
        expect(StagedWrites.meetsExpectation(some(a), some(b))).toBe(sameJson(a, b))
        expect(StagedWrites.meetsExpectation(some(a), Option.none())).toBe(false)
        expect(StagedWrites.meetsExpectation(Option.none(), some(a))).toBe(false)
      }),
      { numRuns: 500 }
    )
    expect(StagedWrites.meetsExpectation(Option.none(), Option.none())).toBe(true)
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    expect(StagedWrites.meetsExpectation(Option.some(cycle), Option.some(cycle))).toBe(false)
    expect(StagedWrites.meetsExpectation(Option.some(1n), Option.some(1n))).toBe(false)
  })

  it.effect("a commit whose expectations hold applies its writes; an Expect sees the commit's earlier writes", () =>
    Effect.gen(function* () {
      yield* commitNow([StagedWrites.upsert("stock", "kettle", { count: 2, sku: "k" })])
      const count = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-1")
          yield* tx.stage(StagedWrites.expect("stock", "kettle", Option.some({ sku: "k", count: 2 })))
          yield* tx.stage(StagedWrites.expect("stock", "grinder", Option.none()))
          yield* tx.stage(StagedWrites.expect("carts", "c-1", Option.none()))
          yield* tx.stage(StagedWrites.upsert("stock", "kettle", { count: 1, sku: "k" }))
          yield* tx.stage(StagedWrites.expect("stock", "kettle", Option.some({ count: 1, sku: "k" })))
          return yield* tx.commit
        })
      )
      expect(count).toBe(5)
      expect((yield* snapshot).get("stock")?.get("kettle")).toEqual({ count: 1, sku: "k" })
      // An expectation only reads: no empty "carts" table appears.
      expect([...(yield* snapshot).keys()]).toEqual(["stock"])
    }).pipe(Effect.provide(StagedWrites.layerMemory))
  )

  it.effect("a record changed since it was read fails the commit with WriteConflictError; nothing lands", () =>
    Effect.gen(function* () {
      yield* commitNow([StagedWrites.upsert("stock", "kettle", { count: 2 })])
      const before = yield* snapshot
      const { error, rolledBack } = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-slow")
          yield* tx.stage(StagedWrites.upsert("orders", "o-1", { item: "kettle" }))
          yield* tx.stage(StagedWrites.expect("stock", "kettle", Option.some({ count: 2 })))
          yield* tx.stage(StagedWrites.upsert("stock", "kettle", { count: 1 }))
          // Another run takes the last-but-one kettle and commits first.
          yield* commitNow([StagedWrites.upsert("stock", "kettle", { count: 1 })])
          const error = yield* Effect.flip(tx.commit)
          // As on SQL: the writes stay staged after a failed commit.
          return { error, rolledBack: yield* tx.rollback }
        })
      )
      expect(error).toBeInstanceOf(StagedWrites.WriteConflictError)
      expect(error).toMatchObject({ table: "stock", key: "kettle" })
      expect(error.message).toContain("run run-slow: stock/kettle")
      expect(rolledBack).toBe(3)
      expect((yield* snapshot).get("orders")).toEqual(before.get("orders"))
      expect((yield* snapshot).get("stock")?.get("kettle")).toEqual({ count: 1 })

      const exists = yield* Effect.scoped(
        Effect.gen(function* () {
          const tx = yield* begin("run-new")
          yield* tx.stage(StagedWrites.expect("stock", "kettle", Option.none()))
          return yield* Effect.flip(tx.commit)
        })
      )
      expect(exists.message).toContain("it exists")
    }).pipe(Effect.provide(StagedWrites.layerMemory))
  )

  it.effect("two runs that read the same stock: the second to commit fails with WriteConflictError", () =>
    Effect.gen(function* () {
      yield* commitNow([StagedWrites.upsert("stock", "kettle", { count: 1 })])
      const take = Tool.make({
        name: "take_kettle",
        description: "Takes a kettle from stock",
        input: Schema.Struct({ wait: Schema.Number }),
        output: Schema.String,
        handler: ({ wait }) =>
          Effect.gen(function* () {
            const current = Option.fromNullable((yield* snapshot).get("stock")?.get("kettle"))
            const count = Option.match(current, { onNone: () => 0, onSome: (s) => (s as { count: number }).count })
            if (count === 0) return "none left"
            yield* AgentRun.stage(StagedWrites.expect("stock", "kettle", current))
            yield* AgentRun.stage(StagedWrites.upsert("stock", "kettle", { count: count - 1 }))
            yield* Effect.sleep(`${wait} seconds`)
            return "taken"
          })
      })
      const agent = Agent.make({ name: "shop", tools: [take] })
      const model = (wait: number) =>
        ScriptedModel.layer([[ScriptedModel.toolUse("take_kettle", { wait })], ScriptedModel.text("Done.")])
      const fast = yield* Effect.fork(AgentRun.start(agent, "buy").pipe(Effect.provide(model(1))))
      const slow = yield* Effect.fork(AgentRun.start(agent, "buy").pipe(Effect.provide(model(5))))
      yield* TestClock.adjust("10 seconds")
      const first = yield* (yield* Fiber.join(fast)).outcome
      const second = yield* (yield* Fiber.join(slow)).outcome
      expect(first._tag).toBe("Completed")
      expect(second).toMatchObject({ _tag: "Failed", writesRolledBack: 2 })
      expect(second._tag === "Failed" && second.error).toContain("WriteConflictError")
      // One kettle, taken once.
      expect((yield* snapshot).get("stock")?.get("kettle")).toEqual({ count: 0 })
    }).pipe(Effect.scoped, Effect.provide(StagedWrites.layerMemory))
  )
})
