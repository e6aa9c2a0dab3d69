/**
 * The Node program: the core program, then the same agent against the fake Anthropic server through
 * @tether/anthropic (cancelled mid-stream: the server must see the socket close) and on SQLite through @tether/sql,
 * and every package loaded from its installed tarball.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer, Option, Stream } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import * as Cluster from "@tether/cluster"
import * as Core from "@tether/core"
import { AgentRun, CancelReason, LanguageModel, StagedWrites } from "@tether/core"
import * as Http from "@tether/http"
import * as TetherNode from "@tether/node"
import { SqlStagedWrites } from "@tether/sql"
import * as Testing from "@tether/testing"
import { FakeAnthropic, ScriptedModel } from "@tether/testing"
import { check, verdict } from "./checks.js"
import type { Check } from "./checks.js"
import { coreChecks } from "./scenario.js"
import { input, makeShop, order, script } from "./shop.js"

const slowAnswer = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ")

/** The fake's side, by turn of the run; the answer streams a token every `interval` ms. */
const anthropicScript =
  (interval: number): FakeAnthropic.Script =>
  (request) => {
    const turn = request.body.messages.filter((message) => message.role === "assistant").length
    if (turn === 0) return FakeAnthropic.toolUse("place_order", order)
    if (turn === 1) return FakeAnthropic.toolUse("check_stock", { item: order.item })
    return FakeAnthropic.text(slowAnswer, { interval })
  }

const committedOrder = Effect.flatMap(StagedWrites.MemoryStore, (store) =>
  Effect.map(store.snapshot, (snapshot) => Option.fromNullable(snapshot.get("orders")?.get(order.item)))
)

/** Cancelled while the model streams its answer (after both tools ran): the socket closes, the order rolls back. */
const cancelledOnAnthropic = Effect.gen(function* () {
  const fake = yield* FakeAnthropic.make(anthropicScript(100))
  const model = yield* AnthropicModel.make({ apiKey: "test", baseURL: fake.url, maxRetries: 0 })
  const run = yield* AgentRun.start(makeShop(Effect.succeed(7)), input, { onLeak: "die" }).pipe(
    Effect.provideService(LanguageModel.LanguageModel, model)
  )
  yield* run.events.pipe(
    Stream.takeUntil((event) => event._tag === "TextDelta"),
    Stream.runDrain
  )
  const outcome = yield* run.cancel(new CancelReason.UserAbort())
  const answer = yield* fake.awaitEnded(2).pipe(Effect.timeout("5 seconds"), Effect.option)
  const stored = yield* committedOrder
  return [
    check("anthropic, cancelled: outcome is Cancelled", outcome._tag === "Cancelled", outcome._tag),
    check(
      "anthropic, cancelled: the staged order was rolled back",
      outcome._tag === "Cancelled" && outcome.writesRolledBack === 1 && Option.isNone(stored)
    ),
    check(
      "anthropic, cancelled: the fake server saw the socket close mid-stream",
      Option.exists(answer, (record) => record.closedAt !== undefined && !record.isFinished),
      Option.match(answer, {
        onNone: () => "the request did not end within 5 s",
        onSome: (record) => `${record.tokensWritten} of 40 tokens written`
      })
    )
  ]
}).pipe(Effect.scoped, Effect.provide(StagedWrites.layerMemory))

/** The same conversation at full speed: the run completes and commits the order. */
const completedOnAnthropic = Effect.gen(function* () {
  const fake = yield* FakeAnthropic.make(anthropicScript(0))
  const model = yield* AnthropicModel.make({ apiKey: "test", baseURL: fake.url, maxRetries: 0 })
  const run = yield* AgentRun.start(makeShop(Effect.succeed(7)), input, { onLeak: "die" }).pipe(
    Effect.provideService(LanguageModel.LanguageModel, model)
  )
  const outcome = yield* run.outcome
  const stored = yield* committedOrder
  return [
    check(
      "anthropic, completed: outcome is Completed and the order committed",
      outcome._tag === "Completed" && outcome.writesCommitted === 1 && Option.isSome(stored),
      outcome._tag === "Failed" ? outcome.error : outcome._tag
    ),
    check("anthropic, completed: three requests", (yield* fake.requestCount) === 3)
  ]
}).pipe(Effect.scoped, Effect.provide(StagedWrites.layerMemory))

/** On SQLite: a cancelled run leaves no row, a completed one commits its order. */
const onSqlite = Effect.gen(function* () {
  const cancelled = yield* AgentRun.start(makeShop(Effect.never), input, { onLeak: "die" })
  yield* cancelled.events.pipe(
    Stream.takeUntil((event) => event._tag === "ToolStarted" && event.tool === "check_stock"),
    Stream.runDrain
  )
  const cancelledOutcome = yield* cancelled.cancel(new CancelReason.UserAbort())
  const afterCancel = yield* SqlStagedWrites.read("orders", order.item)
  const completed = yield* AgentRun.start(makeShop(Effect.succeed(7)), input, { onLeak: "die" })
  const completedOutcome = yield* completed.outcome
  const afterComplete = yield* SqlStagedWrites.read("orders", order.item)
  return [
    check(
      "sqlite, cancelled: rolled back, no row",
      cancelledOutcome._tag === "Cancelled" && cancelledOutcome.writesRolledBack === 1 && Option.isNone(afterCancel)
    ),
    check(
      "sqlite, completed: the order is in the database",
      completedOutcome._tag === "Completed" &&
        Option.exists(afterComplete, (value) => JSON.stringify(value) === JSON.stringify(order)),
      Option.getOrUndefined(afterComplete)
    )
  ]
}).pipe(
  Effect.scoped,
  Effect.provide(
    Layer.merge(
      ScriptedModel.layer(script),
      SqlStagedWrites.layerSqlite({ filename: join(mkdtempSync(join(tmpdir(), "tether-consumer-")), "shop.db") })
    )
  )
)

/** @effect/sql-pg is an optional peer, not installed here: its layer fails with a typed error, not a crash. */
const withoutPgDriver = Effect.map(
  Effect.flip(Effect.scoped(Layer.build(SqlStagedWrites.layerPg({ url: "postgres://127.0.0.1:1/none" })))),
  (error): ReadonlyArray<Check> => [
    check("sql: layerPg without @effect/sql-pg fails with DriverMissingError", error._tag === "DriverMissingError")
  ]
)

const packagesLoad: ReadonlyArray<Check> = [
  check(
    "every package loads on Node",
    [AnthropicModel, Cluster, Core, Http, TetherNode, SqlStagedWrites, Testing].every(
      (ns) => Object.keys(ns).length > 0
    )
  ),
  check("@tether/node resolves to its Node module on Node", typeof TetherNode.CommandTool.make === "function")
]

const checks = await Effect.runPromise(
  Effect.map(Effect.all([coreChecks, cancelledOnAnthropic, completedOnAnthropic, onSqlite, withoutPgDriver]), (all) => [
    ...all.flat(),
    ...packagesLoad
  ])
)
console.log(verdict("node program", checks))
