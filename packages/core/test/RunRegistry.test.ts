import { describe, expect, it } from "@effect/vitest"
import {
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import { Agent, AgentRun, CancelReason, Message, RunEvent, RunRegistry, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const slowText = ScriptedModel.text("a".repeat(100), { chunks: 50, delay: "1 second" })
const env = Layer.mergeAll(ScriptedModel.layer([slowText]), StagedWrites.layerMemory, RunRegistry.layer())
const agent = Agent.make({ name: "chat" })

describe("RunRegistry", () => {
  it.effect("a Stop for one session cancels that session's run only", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const a = yield* registry.start("a", agent, "hi")
      const b = yield* registry.start("b", agent, "hi")
      yield* TestClock.adjust("2 seconds")
      expect([...(yield* registry.running)].sort()).toEqual(["a", "b"])
      const outcome = yield* registry.cancel("a", new CancelReason.UserAbort())
      expect(Option.getOrThrow(outcome)).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
      expect(Option.isSome(yield* a.poll)).toBe(true)
      expect(yield* b.poll).toEqual(Option.none())
      expect(yield* registry.running).toEqual(["b"])
      expect(yield* registry.cancel("nobody", new CancelReason.UserAbort())).toEqual(Option.none())
    }).pipe(Effect.provide(env))
  )

  it.effect("a second start supersedes the first run of the session", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const first = yield* registry.start("s", agent, "one")
      yield* TestClock.adjust("1 second")
      const second = yield* registry.start("s", agent, "two")
      expect(yield* first.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Superseded" } })
      expect(yield* second.poll).toEqual(Option.none())
      expect(Option.getOrThrow(yield* registry.get("s")).id).toBe(second.id)
    }).pipe(Effect.provide(env))
  )

  it.effect("a start can be refused while the session's run is going", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const first = yield* registry.start("s", agent, "one")
      const refused = yield* Effect.flip(registry.start("s", agent, "two", { onConflict: "refuse" }))
      expect(refused).toMatchObject({ _tag: "SessionBusyError", sessionId: "s", runId: first.id })
      expect(yield* first.poll).toEqual(Option.none())
    }).pipe(Effect.provide(env))
  )

  it.effect("closing the registry cancels every run with reason Shutdown", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(env, scope)
      const registry = yield* Effect.provide(RunRegistry.RunRegistry, context)
      const runs = yield* Effect.forEach(["x", "y", "z"], (id) => registry.start(id, agent, "hi")).pipe(
        Effect.provide(context)
      )
      yield* TestClock.adjust("1 second")
      yield* Scope.close(scope, Exit.void)
      for (const run of runs) {
        expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Shutdown" } })
      }
      const recorder = yield* Effect.provide(ScriptedModel.ScriptedModel, context)
      expect(yield* recorder.openStreams).toBe(0)
    })
  )

  it.effect("cancelAll stops every running run and returns once each has its outcome", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const runs = yield* Effect.forEach(["p", "q", "r"], (id) => registry.start(id, agent, "hi"))
      yield* TestClock.adjust("1 second")
      yield* registry.cancel("p", new CancelReason.UserAbort())
      yield* registry.cancelAll(new CancelReason.Shutdown())
      const outcomes = yield* Effect.forEach(runs, (run) => run.poll)
      expect(outcomes.map((outcome) => Option.getOrThrow(outcome))).toMatchObject([
        { _tag: "Cancelled", reason: { _tag: "UserAbort" } },
        { _tag: "Cancelled", reason: { _tag: "Shutdown" } },
        { _tag: "Cancelled", reason: { _tag: "Shutdown" } }
      ])
      expect(yield* registry.running).toEqual([])
      yield* registry.cancelAll(new CancelReason.Shutdown())
    }).pipe(Effect.provide(env))
  )

  it.effect("a cancelled run logs why at Debug, only when the minimum level lets Debug through", () => {
    const logged: Array<string> = []
    const logger = Logger.make(({ message }) => {
      for (const part of [message].flat()) logged.push(String(part))
    })
    const cancelOne = (level: LogLevel.LogLevel) =>
      Effect.gen(function* () {
        const registry = yield* RunRegistry.RunRegistry
        const run = yield* registry.start("d", agent, "hi")
        yield* TestClock.adjust("1 second")
        return yield* run.cancel(new CancelReason.UserAbort())
      }).pipe(Logger.withMinimumLogLevel(level))
    return Effect.gen(function* () {
      const quiet = yield* cancelOne(LogLevel.Info)
      expect(quiet._tag).toBe("Cancelled")
      expect(logged.filter((line) => line.startsWith("run cancelled"))).toEqual([])
      yield* cancelOne(LogLevel.Debug)
      expect(logged.filter((line) => line.startsWith("run cancelled"))).toEqual([
        "run cancelled: the user pressed Stop"
      ])
    }).pipe(Effect.provide(Layer.merge(env, Logger.replace(Logger.defaultLogger, logger))))
  })

  it.effect("forget drops a session's run (cancelling it first) and its history", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const run = yield* registry.start("f", agent, "hi")
      yield* TestClock.adjust("1 second")
      yield* registry.forget("f", new CancelReason.UserAbort())
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
      expect(yield* registry.get("f")).toEqual(Option.none())
      expect(yield* registry.cancel("f", new CancelReason.UserAbort())).toEqual(Option.none())
    }).pipe(Effect.provide(env))
  )

  it.effect("whoever sees the terminal event finds the run ended", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const run = yield* registry.start("t", agent, "hi")
      const seen = yield* run.events.pipe(
        Stream.filter(RunEvent.isTerminal),
        Stream.mapEffect(() => run.poll),
        Stream.runHead,
        Effect.fork
      )
      yield* TestClock.adjust("1 second")
      yield* registry.cancel("t", new CancelReason.UserAbort())
      const polled = Option.flatten(yield* Fiber.join(seen))
      expect(Option.isSome(polled)).toBe(true)
    }).pipe(Effect.provide(env))
  )

  it.effect("tools can read the session they run for", () =>
    Effect.gen(function* () {
      const whoami = Tool.make({
        name: "whoami",
        description: "Session id",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.map(
            AgentRun.currentSessionId,
            Option.getOrElse(() => "none")
          )
      })
      const registry = yield* RunRegistry.RunRegistry
      const run = yield* registry.start("user-7", Agent.make({ name: "a", tools: [whoami] }), "who?")
      yield* TestClock.adjust("1 minute")
      const outcome = yield* run.outcome
      expect(outcome._tag).toBe("Completed")
      const result = outcome.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(result.content).toBe("user-7")
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          ScriptedModel.layer([[ScriptedModel.toolUse("whoami", {})], ScriptedModel.text("ok")]),
          StagedWrites.layerMemory,
          RunRegistry.layer()
        )
      )
    )
  )

  it.effect("an ended run is kept retainEnded for status and re-attaching, then forgotten; a newer run is not", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      // "old" ends at 2 s; "kept" ends at 2 s, then runs again from 4 min to 4 min + 2 s.
      const old = yield* registry.start("old", agent, "hi")
      const kept = yield* registry.start("kept", agent, "hi")
      yield* TestClock.adjust("2 seconds")
      expect((yield* old.outcome)._tag).toBe("Completed")
      expect((yield* kept.outcome)._tag).toBe("Completed")
      yield* TestClock.adjust("4 minutes")
      const again = yield* registry.start("kept", agent, "again")
      yield* TestClock.adjust("2 seconds")
      expect((yield* again.outcome)._tag).toBe("Completed")
      // 4 minutes after "old" ended: still there, ended, with its whole history.
      const stillThere = Option.getOrThrow(yield* registry.get("old"))
      expect(stillThere.id).toBe(old.id)
      expect(Option.isSome(yield* stillThere.poll)).toBe(true)
      const history = yield* Stream.runCollect(stillThere.events)
      expect([...history].at(-1)?._tag).toBe("RunCompleted")
      // Past 5 minutes and one sweep: "old" is forgotten; "kept", whose latest run ended later, is not.
      yield* TestClock.adjust("2 minutes")
      expect(yield* registry.get("old")).toEqual(Option.none())
      expect(yield* registry.cancel("old", new CancelReason.UserAbort())).toEqual(Option.none())
      expect(Option.getOrThrow(yield* registry.get("kept")).id).toBe(again.id)
      yield* TestClock.adjust("5 minutes")
      expect(yield* registry.get("kept")).toEqual(Option.none())
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          ScriptedModel.layer(() => ScriptedModel.text("done", { chunks: 2, delay: "1 second" })),
          StagedWrites.layerMemory,
          RunRegistry.layer({ retainEnded: "5 minutes" })
        )
      )
    )
  )

  it.effect("a run still going is never forgotten", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const long = yield* registry.start("long", agent, "hi")
      yield* TestClock.adjust("1 hour")
      expect(Option.getOrThrow(yield* registry.get("long")).id).toBe(long.id)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          ScriptedModel.layer([ScriptedModel.text("a".repeat(100), { chunks: 100, delay: "1 minute" })]),
          StagedWrites.layerMemory,
          RunRegistry.layer({ retainEnded: "1 minute" })
        )
      )
    )
  )

  it.effect("with retainEnded Duration.infinity, an ended run stays until the session runs again", () =>
    Effect.gen(function* () {
      const registry = yield* RunRegistry.RunRegistry
      const run = yield* registry.start("s", agent, "hi")
      yield* TestClock.adjust("2 seconds")
      expect((yield* run.outcome)._tag).toBe("Completed")
      yield* TestClock.adjust("30 days")
      expect(Option.getOrThrow(yield* registry.get("s")).id).toBe(run.id)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          ScriptedModel.layer(() => ScriptedModel.text("done", { chunks: 2, delay: "1 second" })),
          StagedWrites.layerMemory,
          RunRegistry.layer({ retainEnded: Duration.infinity })
        )
      )
    )
  )
})
