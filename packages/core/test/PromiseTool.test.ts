import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Runtime, Schema } from "effect"
import {
  Agent,
  AgentRun,
  CancelReason,
  Checkpoint,
  CurrentRun,
  Message,
  PromiseTool,
  StagedWrites,
  Tool
} from "@tether/core"
import type { RunEvent } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import {
  collectEvents,
  committed,
  cooperative,
  eventually,
  expectInterruptedOnly,
  makeWarnings,
  record,
  setup,
  sleep,
  stubbornFor,
  timedCancel
} from "./support/interop.js"

describe("PromiseTool.make", () => {
  it.live("a Promise that honours its signal stops at once and is not reported abandoned", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "polite", tools: [cooperative] }), "go", {
        onLeak: "die"
      })
      const events = yield* collectEvents(run)
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("cooperativePromiseStop", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(500)
      const tags = (yield* Fiber.join(events)).map((event) => event._tag)
      expect(tags).toContain("ToolInterrupted")
      expect(tags).not.toContain("ToolAbandoned")
      expect(yield* cooperative.abandoned).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("cooperative", {})], ScriptedModel.text("done")]))
    )
  )

  it.live("a Promise that ignores its signal is abandoned after the grace period; its late writes never commit", () =>
    Effect.gen(function* () {
      let resolveLate: (error: unknown) => void = () => {}
      const lateWrite = new Promise<unknown>((resolve) => {
        resolveLate = resolve
      })
      const warnings = makeWarnings()
      const stubborn = stubbornFor({ abandonAfter: "200 millis", resolveAfterMillis: 600, onLateWrite: resolveLate })
      const run = yield* AgentRun.start(Agent.make({ name: "stubborn", tools: [stubborn] }), "go", {
        onLeak: "die"
      }).pipe(Effect.provide(warnings.layer))
      const events = yield* collectEvents(run)
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("abandonedPromiseCancel(grace 200)", millis)
      expect(millis).toBeGreaterThanOrEqual(190)
      expect(millis).toBeLessThan(1_000)
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      expect(yield* stubborn.abandoned).toBe(1)
      // The application's log is told once, as a warning.
      expect(warnings.lines).toEqual(['tool "stubborn" ignored its abort signal; abandoned after 200 ms'])
      const all = yield* Fiber.join(events)
      const abandoned = all.filter((event): event is RunEvent.ToolAbandoned => event._tag === "ToolAbandoned")
      expect(abandoned).toEqual([
        expect.objectContaining({ toolUseId: "toolu_stubborn", tool: "stubborn", afterMillis: 200 })
      ])
      expect(all.findIndex((event) => event._tag === "ToolAbandoned")).toBeLessThan(
        all.findIndex((event) => event._tag === "RunCancelled")
      )
      // The Promise goes on, resolves and tries to write: refused.
      const refusal = yield* Effect.promise(() => lateWrite)
      expect(refusal).toMatchObject({ _tag: "StagedWriteError", operation: "stage" })
      yield* eventually(
        "the abandoned Promise to settle",
        Effect.map(stubborn.abandoned, (n) => n === 0)
      )
      const [snapshot, commits] = yield* committed
      expect(snapshot.size).toBe(0)
      expect(commits).toBe(0)
      yield* expectInterruptedOnly(run)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([[ScriptedModel.toolUse("stubborn", {}, { id: "toolu_stubborn" })], ScriptedModel.text("done")])
      )
    )
  )

  it.live("a timed-out Promise's late write is refused while the run goes on and commits the rest", () =>
    Effect.gen(function* () {
      let resolveLate: (error: unknown) => void = () => {}
      const lateWrite = new Promise<unknown>((resolve) => {
        resolveLate = resolve
      })
      const slow = PromiseTool.make({
        name: "slow_writer",
        description: "Writes too late",
        input: Schema.Struct({}),
        output: Schema.String,
        timeout: "100 millis",
        abandonAfter: "50 millis",
        run: async (_input, _signal, run) => {
          await sleep(300)
          resolveLate(
            await run.stage(StagedWrites.upsert("late", "k", 1)).then(
              () => undefined,
              (e) => e
            )
          )
          return "late"
        }
      })
      const quick = Tool.make({
        name: "quick_writer",
        description: "Writes",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () => Effect.as(AgentRun.stage(StagedWrites.upsert("quick", "k", 1)), "ok")
      })
      const warnings = makeWarnings()
      const run = yield* AgentRun.start(Agent.make({ name: "mixed", tools: [slow, quick] }), "go", {
        onLeak: "die"
      }).pipe(Effect.provide(warnings.layer))
      const events = yield* collectEvents(run)
      const refusal = yield* Effect.promise(() => lateWrite)
      expect(yield* run.poll).toEqual(expect.objectContaining({ _tag: "None" }))
      expect(refusal).toMatchObject({ _tag: "StagedWriteError" })
      const outcome = yield* run.outcome
      expect(outcome).toMatchObject({ _tag: "Completed", writesCommitted: 1 })
      const [snapshot] = yield* committed
      expect([...snapshot.keys()]).toEqual(["quick"])
      const tags = (yield* Fiber.join(events)).map((event) => event._tag)
      expect(tags).toContain("ToolAbandoned")
      expect(warnings.lines).toEqual(['tool "slow_writer" ignored its abort signal; abandoned after 50 ms'])
      if (outcome._tag !== "Completed") return
      const results = outcome.transcript
        .flatMap((message) => message.content)
        .filter((block): block is Message.ToolResultBlock => block.type === "tool_result")
      expect(results.find((result) => result.isError)?.content).toMatch(/ToolTimeoutError/)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([
          [ScriptedModel.toolUse("slow_writer", {}), ScriptedModel.toolUse("quick_writer", {})],
          ScriptedModel.text("all done", { chunks: 2, delay: "500 millis" })
        ])
      )
    )
  )

  it.live("a rejected Promise goes back to the model as a PromiseToolError", () =>
    Effect.gen(function* () {
      const broken = PromiseTool.make({
        name: "broken",
        description: "Rejects",
        input: Schema.Struct({}),
        output: Schema.String,
        run: async () => {
          throw new Error("boom")
        }
      })
      const result = yield* AgentRun.run(Agent.make({ name: "b", tools: [broken] }), "go")
      const toolResult = result.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(toolResult).toMatchObject({ isError: true, content: "PromiseToolError: boom" })
    }).pipe(Effect.provide(setup([[ScriptedModel.toolUse("broken", {})], ScriptedModel.text("ok")])))
  )

  it.live("work a tool left running that writes through AgentRun.stage after the run ended is refused", () =>
    Effect.gen(function* () {
      let resolveLate: (exit: Exit.Exit<void, StagedWrites.StagedWriteError>) => void = () => {}
      const lateWrite = new Promise<Exit.Exit<void, StagedWrites.StagedWriteError>>((resolve) => {
        resolveLate = resolve
      })
      const leaky = Tool.make({
        name: "leaky",
        description: "Starts work outside Effect and returns",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.map(Effect.runtime<CurrentRun.CurrentRun>(), (runtime) => {
            void sleep(200).then(() =>
              Runtime.runPromiseExit(runtime)(AgentRun.stage(StagedWrites.upsert("leaked", "k", 1))).then(resolveLate)
            )
            return "started"
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "leaky", tools: [leaky] }), "go")
      yield* Effect.sleep("50 millis")
      yield* run.cancel(new CancelReason.UserAbort())
      const exit = yield* Effect.promise(() => lateWrite)
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
        _tag: "StagedWriteError",
        message: "the run's transaction has already ended"
      })
      const [snapshot, commits] = yield* committed
      expect(snapshot.size).toBe(0)
      expect(commits).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("leaky", {})], ScriptedModel.text("x", { delay: "1 hour" })]))
    )
  )
})

describe("Checkpoint.run", () => {
  const busyFor = (millis: number) => {
    const until = performance.now() + millis
    while (performance.now() < until) {
      // spin
    }
  }

  it.live("returns the work's result; a throw fails with CheckpointError", () =>
    Effect.gen(function* () {
      const sum = yield* Checkpoint.run(function* () {
        let total = 0
        for (let i = 1; i <= 1000; i++) {
          total += i
          yield
        }
        return total
      })
      expect(sum).toBe(500500)
      const failure = yield* Effect.flip(
        Checkpoint.run(function* () {
          yield
          throw new Error("bad row")
        })
      )
      expect(failure).toMatchObject({ _tag: "CheckpointError", message: "bad row" })
    })
  )

  it.live("interrupting stops the work at its next checkpoint and runs its finally blocks", () =>
    Effect.gen(function* () {
      let steps = 0
      let isCleanedUp = false
      const fiber = yield* Effect.fork(
        Checkpoint.run(function* () {
          try {
            while (true) {
              busyFor(0.2)
              steps++
              yield
            }
          } finally {
            isCleanedUp = true
          }
        })
      )
      // Timers still fire while the work runs: it gives the thread back between slices.
      yield* Effect.sleep("100 millis")
      expect(steps).toBeGreaterThan(10)
      const startedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      record("checkpointStop", performance.now() - startedAt)
      const stepsAtStop = steps
      expect(isCleanedUp).toBe(true)
      yield* Effect.sleep("50 millis")
      expect(steps).toBe(stepsAtStop)
    })
  )

  it.live("a tool whose loop has checkpoints stops with its run", () =>
    Effect.gen(function* () {
      let steps = 0
      const crunch = Tool.make({
        name: "crunch",
        description: "Crunches for 10 s",
        input: Schema.Struct({}),
        output: Schema.Number,
        handler: () =>
          Checkpoint.run(function* () {
            const until = Date.now() + 10_000
            while (Date.now() < until) {
              busyFor(0.1)
              steps++
              yield
            }
            return steps
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "crunch", tools: [crunch] }), "go", { onLeak: "die" })
      yield* eventually(
        "the work",
        Effect.sync(() => steps > 0)
      )
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("checkpointToolCancel", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(500)
      const stepsAtStop = steps
      yield* Effect.sleep("30 millis")
      expect(steps).toBe(stepsAtStop)
      yield* expectInterruptedOnly(run)
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("crunch", {})], ScriptedModel.text("done")])))
  )
})
