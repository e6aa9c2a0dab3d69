/**
 * The core program, the same on Node, Bun, Deno and workerd: it imports only effect, @tether/core and the
 * runtime-neutral `@tether/testing/ScriptedModel`. One run is cancelled while `check_stock` hangs (after
 * `place_order` staged its write): it must end `Cancelled` with the write rolled back, nothing committed, the tool
 * interrupted and no model stream left open. Another run, whose tool answers, must commit the order.
 */
import { Deferred, Effect, Layer, Option, Stream } from "effect"
import { AgentRun, CancelReason, StagedWrites } from "@tether/core"
import * as ScriptedModel from "@tether/testing/ScriptedModel"
import { check } from "./checks.js"
import type { Check } from "./checks.js"
import { input, makeShop, order, script } from "./shop.js"

const committedOrder = Effect.gen(function* () {
  const store = yield* StagedWrites.MemoryStore
  const snapshot = yield* store.snapshot
  return { order: Option.fromNullable(snapshot.get("orders")?.get(order.item)), commits: yield* store.commits }
})

/** Cancelled while `check_stock` hangs: everything the run staged is rolled back. */
export const cancelledRun: Effect.Effect<ReadonlyArray<Check>> = Effect.gen(function* () {
  const toolInterrupted = yield* Deferred.make<void>()
  const hangs = Effect.onInterrupt(Effect.never, () => Deferred.succeed(toolInterrupted, undefined))
  const run = yield* AgentRun.start(makeShop(hangs), input, { onLeak: "die" })
  yield* run.events.pipe(
    Stream.takeUntil((event) => event._tag === "ToolStarted" && event.tool === "check_stock"),
    Stream.runDrain
  )
  const outcome = yield* run.cancel(new CancelReason.UserAbort())
  const { commits, order: stored } = yield* committedOrder
  const openStreams = yield* Effect.flatMap(ScriptedModel.ScriptedModel, (recorder) => recorder.openStreams)
  return [
    check("cancelled run: outcome is Cancelled", outcome._tag === "Cancelled", outcome._tag),
    check(
      "cancelled run: the reason is UserAbort",
      outcome._tag === "Cancelled" && outcome.reason._tag === "UserAbort",
      outcome._tag === "Cancelled" ? outcome.reason._tag : "-"
    ),
    check(
      "cancelled run: its one staged write was rolled back",
      outcome._tag === "Cancelled" && outcome.writesRolledBack === 1,
      outcome._tag === "Cancelled" ? `writesRolledBack ${outcome.writesRolledBack}` : "-"
    ),
    check("cancelled run: nothing committed", commits === 0 && Option.isNone(stored), `commits ${commits}`),
    check("cancelled run: check_stock was interrupted", yield* Deferred.isDone(toolInterrupted)),
    check("cancelled run: no model stream left open", openStreams === 0, `open ${openStreams}`)
  ]
}).pipe(Effect.scoped, Effect.provide(Layer.merge(ScriptedModel.layer(script), StagedWrites.layerMemory)))

/** The same agent with a tool that answers: the run completes and commits its write. */
export const completedRun: Effect.Effect<ReadonlyArray<Check>> = Effect.gen(function* () {
  const run = yield* AgentRun.start(makeShop(Effect.succeed(7)), input, { onLeak: "die" })
  const outcome = yield* run.outcome
  const { commits, order: stored } = yield* committedOrder
  return [
    check("completed run: outcome is Completed", outcome._tag === "Completed", outcome._tag),
    check(
      "completed run: one write committed",
      outcome._tag === "Completed" && outcome.writesCommitted === 1 && commits === 1,
      `commits ${commits}`
    ),
    check(
      "completed run: the order is in the store",
      Option.exists(stored, (value) => JSON.stringify(value) === JSON.stringify(order)),
      Option.getOrUndefined(stored)
    )
  ]
}).pipe(Effect.scoped, Effect.provide(Layer.merge(ScriptedModel.layer(script), StagedWrites.layerMemory)))

/** Both runs' checks. */
export const coreChecks: Effect.Effect<ReadonlyArray<Check>> = Effect.map(
  Effect.all([cancelledRun, completedRun]),
  (all) => all.flat()
)
