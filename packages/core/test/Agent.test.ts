import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Schema, Stream, TestClock, Tracer } from "effect"
import { Agent, AgentRun, CancelReason, Message, ModelError, StagedWrites, Subtask, Tool } from "@tether/core"
import { HttpServerError } from "@effect/platform"
import { ScriptedModel } from "@tether/testing"

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })

/** Counts acquisitions and releases so a test can check every finalizer ran exactly once. */
const makeProbe = Effect.gen(function* () {
  const started = yield* Ref.make(0)
  const finalized = yield* Ref.make(0)
  const guard = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Ref.update(started, (n) => n + 1),
      () => effect,
      () => Ref.update(finalized, (n) => n + 1)
    )
  return { started: Ref.get(started), finalized: Ref.get(finalized), guard }
})

const setup = (script: ScriptedModel.Script) => Layer.mergeAll(ScriptedModel.layer(script), StagedWrites.layerMemory)

const orderTool = (probe: Effect.Effect.Success<typeof makeProbe>, work: Duration.DurationInput = "1 second") =>
  Tool.make({
    name: "record_order",
    description: "Records an order",
    input: Order,
    output: Schema.String,
    handler: (order) =>
      probe.guard(
        Effect.gen(function* () {
          yield* AgentRun.stage(StagedWrites.upsert("orders", order.id, order))
          yield* Effect.sleep(work)
          return `recorded ${order.id}`
        })
      )
  })

const committed = Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)

describe("AgentRun.run", () => {
  it.effect("completes a run with a tool call and commits its staged writes", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const agent = Agent.make({ name: "shop", tools: [orderTool(probe)] })
      const fiber = yield* Effect.fork(AgentRun.run(agent, "buy"))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      expect(result.text).toBe("Done.")
      expect(Message.unansweredToolUses(result.transcript)).toEqual([])
      const snapshot = yield* committed
      expect(snapshot.get("orders")?.get("o-1")).toEqual({ id: "o-1", total: 3 })
      expect(yield* probe.finalized).toBe(1)
    }).pipe(
      Effect.provide(
        setup([[ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })], ScriptedModel.text("Done.")])
      )
    )
  )

  it.effect("interrupting the run while a tool runs interrupts the tool, rolls back and answers the tool_use", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const agent = Agent.make({ name: "shop", tools: [orderTool(probe, "1 hour")] })
      const run = yield* AgentRun.start(agent, "buy")
      const events = yield* Stream.runCollect(run.events).pipe(Effect.fork)
      yield* TestClock.adjust("1 second")
      expect(yield* probe.started).toBe(1)
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome._tag).toBe("Cancelled")
      if (outcome._tag !== "Cancelled") return
      expect(outcome.reason._tag).toBe("UserAbort")
      expect(outcome.writesRolledBack).toBe(1)
      expect(yield* probe.finalized).toBe(1)
      expect((yield* committed).size).toBe(0)
      expect(Message.unansweredToolUses(outcome.transcript)).toEqual([])
      const last = outcome.transcript[outcome.transcript.length - 1]!
      expect(last.content[0]).toMatchObject({ type: "tool_result", isError: true })
      expect((last.content[0] as Message.ToolResultBlock).content).toMatch(/^Interrupted/)
      const exit = yield* Fiber.await(yield* run.fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      const tags = Array.from(yield* Fiber.join(events), (event) => event._tag)
      expect(tags).toContain("ToolInterrupted")
      expect(tags.slice(-2)).toEqual(["RolledBack", "RunCancelled"])
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.openStreams).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })], ScriptedModel.text("x")]))
    )
  )

  it.effect("transcriptSoFar is the transcript closed as if the run stopped now, and the run goes on", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const agent = Agent.make({ name: "shop", tools: [orderTool(probe, "1 hour")] })
      const run = yield* AgentRun.start(agent, "buy")
      expect(yield* run.transcriptSoFar("a checkpoint")).toEqual([Message.user("buy")])
      yield* TestClock.adjust("1 second")
      expect(yield* probe.started).toBe(1)
      // The tool runs: its call is answered as interrupted, with the reason given.
      const sofar = yield* run.transcriptSoFar("its replica was lost")
      expect(sofar.map((message) => message.role)).toEqual(["user", "assistant", "user"])
      expect(Message.unansweredToolUses(sofar)).toEqual([])
      expect((sofar[2]!.content[0] as Message.ToolResultBlock).content).toMatch(
        /^Interrupted: the run stopped \(its replica was lost\)/
      )
      // Asking changes nothing: the run is still going, and its tool is not finalized.
      expect(Option.isNone(yield* run.poll)).toBe(true)
      expect(yield* probe.finalized).toBe(0)
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome.transcript.length).toBe(3)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })], ScriptedModel.text("x")]))
    )
  )

  it.effect("interrupting the run while a turn streams closes the stream and keeps the partial text", () =>
    Effect.gen(function* () {
      const agent = Agent.make({ name: "writer" })
      const run = yield* AgentRun.start(agent, "write")
      yield* TestClock.adjust("250 millis")
      const outcome = yield* run.cancel(new CancelReason.ClientDisconnected())
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.openStreams).toBe(0)
      expect(yield* recorder.chunksEmitted).toBe(2)
      expect(outcome).toMatchObject({
        _tag: "Cancelled",
        reason: { _tag: "ClientDisconnected" },
        tokensEstimated: true
      })
      if (outcome._tag !== "Cancelled") return
      expect(Message.text(outcome.transcript[1]!)).toBe("Hello ")
      const ledger = yield* run.tokens
      expect(ledger.inFlight).toBe(0)
      expect(ledger.reserved).toBe(ledger.settled + ledger.released)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([ScriptedModel.text("Hello there world", { chunks: 6, delay: "100 millis" })]))
    )
  )

  it.effect("interrupting the run interrupts its subtasks before the writes roll back", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const background = Tool.make({
        name: "background",
        description: "Starts background work",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.gen(function* () {
            yield* Subtask.spawn(
              "indexer",
              probe.guard(
                Effect.gen(function* () {
                  yield* Effect.sleep("1 second")
                  yield* AgentRun.stage(StagedWrites.upsert("index", "a", 1))
                  yield* Effect.sleep("1 hour")
                })
              )
            )
            return "started"
          })
      })
      const agent = Agent.make({ name: "bg", tools: [background] })
      const run = yield* AgentRun.start(agent, "go", { onLeak: "die" })
      yield* TestClock.adjust("2 seconds")
      expect(yield* probe.started).toBe(1)
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      expect(yield* probe.finalized).toBe(1)
      expect((yield* committed).size).toBe(0)
      const exit = yield* Fiber.await(yield* run.fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("background", {})], ScriptedModel.text("ok")])))
  )

  it.effect("a cancel interrupts the subtasks at once, without waiting for the loop to stop", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const spawner = Tool.make({
        name: "spawn",
        description: "Spawns a subtask, then waits; its cleanup takes a second",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.gen(function* () {
            yield* Subtask.spawn(
              "child",
              Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => log.push("subtask"))))
            )
            return yield* Effect.never.pipe(
              Effect.ensuring(
                Effect.zipRight(
                  Effect.sleep("1 second"),
                  Effect.sync(() => log.push("tool"))
                )
              )
            )
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "a", tools: [spawner] }), "go")
      yield* TestClock.adjust("10 millis")
      yield* run.requestCancel(new CancelReason.UserAbort())
      // The tool is still cleaning up (its second has not passed), and the subtask has already stopped.
      yield* TestClock.adjust("500 millis")
      expect(log).toEqual(["subtask"])
      yield* TestClock.adjust("1 second")
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
      expect(log).toEqual(["subtask", "tool"])
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("spawn", {})], ScriptedModel.text("x")])))
  )

  it.effect("a successful run waits for its subtasks and commits their writes", () =>
    Effect.gen(function* () {
      const spawner = Tool.make({
        name: "spawn",
        description: "Spawns",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.as(
            Subtask.spawn(
              "late-writer",
              Effect.sleep("5 seconds").pipe(Effect.zipRight(AgentRun.stage(StagedWrites.upsert("t", "k", "v"))))
            ),
            "spawned"
          )
      })
      const run = yield* AgentRun.start(Agent.make({ name: "a", tools: [spawner] }), "go")
      yield* TestClock.adjust("10 seconds")
      const outcome = yield* run.outcome
      expect(outcome).toMatchObject({ _tag: "Completed", writesCommitted: 1 })
      expect((yield* committed).get("t")?.get("k")).toBe("v")
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("spawn", {})], ScriptedModel.text("ok")])))
  )

  it.effect("compensations run in reverse order when the run does not succeed", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const sideEffect = Tool.make({
        name: "email",
        description: "Sends two emails",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.gen(function* () {
            yield* AgentRun.compensate(Ref.update(log, (l) => [...l, "unsend first"]))
            yield* AgentRun.compensate(Ref.update(log, (l) => [...l, "unsend second"]))
            yield* Effect.sleep("1 hour")
            return "sent"
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "mailer", tools: [sideEffect] }), "go")
      yield* TestClock.adjust("1 second")
      const outcome = yield* run.cancel(new CancelReason.Shutdown())
      expect(outcome).toMatchObject({ _tag: "Cancelled", compensationsRun: 2, reason: { _tag: "Shutdown" } })
      expect(yield* Ref.get(log)).toEqual(["unsend second", "unsend first"])
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("email", {})], ScriptedModel.text("ok")])))
  )

  it.effect("a tool that fails with a value that cannot be shown as text still answers the model with an error", () =>
    Effect.gen(function* () {
      const odd = Tool.make({
        name: "odd",
        description: "Fails with an object without a prototype",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () => Effect.fail(Object.create(null) as unknown)
      })
      const fiber = yield* Effect.fork(AgentRun.run(Agent.make({ name: "a", tools: [odd] }), "go"))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      const answer = result.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(answer.isError).toBe(true)
      expect(answer.content).toMatch(/cannot be shown as text/)
    }).pipe(Effect.provide(setup([[ScriptedModel.toolUse("odd", {})], ScriptedModel.text("Done.")])))
  )

  it.effect("input that makes Schema's own parser throw goes back to the model as bad input too", () =>
    Effect.gen(function* () {
      const pick = Tool.make({
        name: "pick",
        description: "Takes a tagged choice",
        input: Schema.Struct({
          choice: Schema.Union(
            Schema.Struct({ kind: Schema.Literal("a") }),
            Schema.Struct({ kind: Schema.Literal("b") })
          )
        }),
        output: Schema.String,
        handler: ({ choice }) => Effect.succeed(choice.kind)
      })
      const fiber = yield* Effect.fork(AgentRun.run(Agent.make({ name: "a", tools: [pick] }), "go"))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      const answer = result.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(answer.isError).toBe(true)
      expect(answer.content).toMatch(/Invalid input for tool "pick"/)
    }).pipe(
      Effect.provide(
        setup([[ScriptedModel.toolUseRaw("pick", '{"choice": {"kind": {"toString": 0}}}')], ScriptedModel.text("Ok.")])
      )
    )
  )

  it.effect("a tool whose schemas are asynchronous gets its input decoded and its output encoded all the same", () =>
    Effect.gen(function* () {
      // Schema's synchronous parse refuses these (an Effect that is not done at once): the tool call parses them as
      // an effect instead.
      const later = <A>(value: A) => Effect.promise(() => Promise.resolve(value))
      const Total = Schema.transformOrFail(Schema.Number, Schema.Number, {
        strict: true,
        decode: (n) => later(n * 2),
        encode: (n) => later(n)
      })
      const Shout = Schema.transformOrFail(Schema.String, Schema.String, {
        strict: true,
        decode: later,
        encode: (text) => later(text.toUpperCase())
      })
      const tool = Tool.make({
        name: "double",
        description: "Doubles a total",
        input: Schema.Struct({ total: Total }),
        output: Shout,
        handler: ({ total }) => Effect.succeed(`total ${total}`)
      })
      const result = yield* AgentRun.run(Agent.make({ name: "math", tools: [tool] }), "go")
      const toolResult = result.transcript
        .flatMap((m) => m.content)
        .find((b): b is Message.ToolResultBlock => b.type === "tool_result")
      expect(toolResult).toMatchObject({ isError: false, content: "TOTAL 6" })
    }).pipe(Effect.provide(setup([[ScriptedModel.toolUse("double", { total: 3 })], ScriptedModel.text("Done.")])))
  )

  it.effect("bad tool input goes back to the model as an error result and the run continues", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const agent = Agent.make({ name: "shop", tools: [orderTool(probe, "1 millis")] })
      const fiber = yield* Effect.fork(AgentRun.run(agent, "buy"))
      yield* TestClock.adjust("1 minute")
      const result = yield* Fiber.join(fiber)
      expect(result.text).toBe("Sorry.")
      const results = result.transcript
        .flatMap((m) => m.content)
        .filter((b): b is Message.ToolResultBlock => b.type === "tool_result")
      expect(results).toHaveLength(3)
      expect(results.every((r) => r.isError)).toBe(true)
      expect(results[0]!.content).toMatch(/Invalid input for tool "record_order"/)
      expect(results[1]!.content).toMatch(/total/)
      expect(results[2]!.content).toMatch(/Unknown tool "teleport"/)
      expect(yield* probe.started).toBe(0)
      const recorder = yield* ScriptedModel.ScriptedModel
      const requests = yield* recorder.requests
      expect(requests).toHaveLength(2)
    }).pipe(
      Effect.provide(
        setup([
          [
            ScriptedModel.toolUseRaw("record_order", '{"id": "o-1", "total": '),
            ScriptedModel.toolUse("record_order", { id: "o-1", total: "three" }),
            ScriptedModel.toolUse("teleport", {})
          ],
          ScriptedModel.text("Sorry.")
        ])
      )
    )
  )

  it.effect("a tool past its timeout is interrupted and reported to the model", () =>
    Effect.gen(function* () {
      const slow = Tool.make({
        name: "slow",
        description: "Slow",
        input: Schema.Struct({}),
        output: Schema.String,
        timeout: "2 seconds",
        handler: () => Effect.as(Effect.sleep("1 hour"), "late")
      })
      const fiber = yield* Effect.fork(AgentRun.run(Agent.make({ name: "a", tools: [slow] }), "go"))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(fiber)
      const toolResult = result.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(toolResult).toMatchObject({ isError: true })
      expect(toolResult.content).toMatch(/ToolTimeoutError/)
    }).pipe(Effect.provide(setup([[ScriptedModel.toolUse("slow", {})], ScriptedModel.text("ok")])))
  )

  it.effect("a plain fiber interrupt is recorded as Interrupted", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "go")
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(yield* run.fiber)
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Interrupted" } })
    }).pipe(Effect.scoped, Effect.provide(setup([ScriptedModel.text("abcdefgh", { chunks: 4, delay: "1 second" })])))
  )

  it.effect("the run's timeout cancels it with reason Timeout", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "go", { timeout: "3 seconds" })
      yield* TestClock.adjust("5 seconds")
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Timeout", millis: 3000 } })
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([ScriptedModel.text("abcdefghijklmnop", { chunks: 8, delay: "1 second" })]))
    )
  )

  it.effect("a model failure fails the run and rolls back", () =>
    Effect.gen(function* () {
      const probe = yield* makeProbe
      const run = yield* AgentRun.start(Agent.make({ name: "shop", tools: [orderTool(probe, "1 millis")] }), "buy")
      yield* TestClock.adjust("1 minute")
      const outcome = yield* run.outcome
      expect(outcome).toMatchObject({ _tag: "Failed", writesRolledBack: 1 })
      if (outcome._tag === "Failed") expect(outcome.error).toMatch(/OverloadedError/)
      expect((yield* committed).size).toBe(0)
      const exit = yield* Fiber.await(yield* run.fiber)
      expect(Exit.isFailure(exit) && Option.isSome(Cause.failureOption(exit.cause))).toBe(true)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([
          [ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })],
          [ScriptedModel.fail(new ModelError.OverloadedError({ message: "busy", status: 529 }))]
        ])
      )
    )
  )

  it.effect("a tool that will not stop is reported after the cancel deadline and its late writes never land", () =>
    Effect.gen(function* () {
      const lateWrite = yield* Ref.make("not attempted")
      const stubborn = Tool.make({
        name: "stubborn",
        description: "Ignores interruption",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.gen(function* () {
            yield* AgentRun.stage(StagedWrites.upsert("t", "early", 1))
            yield* Effect.uninterruptible(
              Effect.sleep("10 seconds").pipe(
                Effect.zipRight(Effect.either(AgentRun.stage(StagedWrites.upsert("t", "late", 2)))),
                Effect.flatMap((result) => Ref.set(lateWrite, result._tag))
              )
            )
            return "done"
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "a", tools: [stubborn] }), "go", {
        cancelDeadline: "1 second",
        onLeak: "die"
      })
      yield* TestClock.adjust("1 second")
      const cancelling = yield* Effect.fork(run.cancel(new CancelReason.UserAbort()))
      yield* TestClock.adjust("2 seconds")
      const outcome = yield* Fiber.join(cancelling)
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      // The stubborn tool finishes later; its run fiber ends with it, dying with the leak report.
      yield* TestClock.adjust("20 seconds")
      const exit = yield* Fiber.await(yield* run.fiber)
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)).toMatch(/still alive/)
      expect(yield* Ref.get(lateWrite)).toBe("Left")
      expect((yield* committed).size).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("stubborn", {})], ScriptedModel.text("ok")])))
  )

  it.effect("writes of a tool call that failed or timed out never commit, while the run's other writes do", () =>
    Effect.gen(function* () {
      const writer = (name: string, behaviour: Effect.Effect<string, string>) =>
        Tool.make({
          name: name,
          description: name,
          input: Schema.Struct({}),
          output: Schema.String,
          timeout: "5 seconds",
          handler: () => Effect.zipRight(AgentRun.stage(StagedWrites.upsert("t", name, true)), behaviour)
        })
      const tools = [
        writer("ok", Effect.succeed("fine")),
        writer("fails", Effect.fail("boom")),
        writer("hangs", Effect.as(Effect.sleep("1 hour"), "late"))
      ]
      const fiber = yield* Effect.fork(AgentRun.run(Agent.make({ name: "a", tools }), "go"))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      const results = result.transcript[2]!.content as ReadonlyArray<Message.ToolResultBlock>
      expect(results.map((r) => r.isError)).toEqual([false, true, true])
      expect([...((yield* committed).get("t")?.keys() ?? [])]).toEqual(["ok"])
    }).pipe(
      Effect.provide(
        setup([
          [ScriptedModel.toolUse("ok", {}), ScriptedModel.toolUse("fails", {}), ScriptedModel.toolUse("hangs", {})],
          ScriptedModel.text("done")
        ])
      )
    )
  )

  it.effect("a cancel aborts the model request's signal in the very call, before any fiber unwinds", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "a" }), "go")
      yield* TestClock.adjust("150 millis")
      const recorder = yield* ScriptedModel.ScriptedModel
      const [request] = yield* recorder.requests
      expect(request!.signal?.aborted).toBe(false)
      // requestCancel runs synchronously up to the abort: no fiber of the run has run in between.
      yield* run.requestCancel(new CancelReason.UserAbort())
      expect(request!.signal?.aborted).toBe(true)
      expect(request!.signal?.reason).toMatchObject({ _tag: "UserAbort" })
      expect(yield* run.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
    }).pipe(Effect.scoped, Effect.provide(setup([ScriptedModel.text("abcdefgh", { chunks: 4, delay: "100 millis" })])))
  )

  it.effect("unsafeRequestCancel aborts the model request before it returns, and does nothing once the run ended", () =>
    Effect.gen(function* () {
      const first = yield* AgentRun.start(Agent.make({ name: "a" }), "go")
      yield* TestClock.adjust("150 millis")
      const recorder = yield* ScriptedModel.ScriptedModel
      const [request] = yield* recorder.requests
      first.unsafeRequestCancel(new CancelReason.Shutdown())
      expect(request!.signal?.reason).toMatchObject({ _tag: "Shutdown" })
      expect(yield* first.outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Shutdown" } })
      const second = yield* AgentRun.start(Agent.make({ name: "a" }), "go")
      yield* TestClock.adjust("1 second")
      const completed = yield* second.outcome
      expect(completed._tag).toBe("Completed")
      second.unsafeRequestCancel(new CancelReason.UserAbort())
      expect(yield* second.outcome).toBe(completed)
      const [, again] = yield* recorder.requests
      expect(again!.signal?.aborted).toBe(false)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([
          ScriptedModel.text("abcdefgh", { chunks: 4, delay: "100 millis" }),
          ScriptedModel.text("abcdefgh", { chunks: 4, delay: "100 millis" })
        ])
      )
    )
  )

  it.effect(
    "interrupting the run's fiber aborts the model request's signal, with the reason its interruptors tell",
    () =>
      Effect.gen(function* () {
        const fiber = yield* Effect.fork(AgentRun.run(Agent.make({ name: "a" }), "go"))
        yield* TestClock.adjust("150 millis")
        const recorder = yield* ScriptedModel.ScriptedModel
        const [request] = yield* recorder.requests
        expect(request!.signal?.aborted).toBe(false)
        // As @effect/platform does when the client goes away.
        const exit = yield* Fiber.interruptAs(fiber, HttpServerError.clientAbortFiberId)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(request!.signal?.aborted).toBe(true)
        expect(request!.signal?.reason).toMatchObject({ _tag: "ClientDisconnected" })
      }).pipe(Effect.provide(setup([ScriptedModel.text("abcdefgh", { chunks: 4, delay: "100 millis" })])))
  )

  it.effect("the AgentRun.run span covers the run: its turns and tool calls are its children and end inside it", () =>
    Effect.gen(function* () {
      // Spans in the order they started and ended (the TestClock gives them all the same times).
      const spans: Array<{
        name: string
        parent: string | undefined
        started: number
        ended?: number
        attributes: Map<string, unknown>
      }> = []
      let tick = 0
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          const attributes = new Map<string, unknown>()
          const entry: (typeof spans)[number] = {
            name,
            parent: Option.isSome(parent) && parent.value._tag === "Span" ? parent.value.name : undefined,
            started: ++tick,
            attributes
          }
          spans.push(entry)
          const span: Tracer.Span = {
            _tag: "Span",
            name,
            spanId: `span-${spans.length}`,
            traceId: "trace",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes,
            links,
            sampled: true,
            kind,
            end: () => {
              entry.ended = ++tick
            },
            attribute: (key, value) => void attributes.set(key, value),
            event: () => {},
            addLinks: () => {}
          }
          return span
        },
        context: (execute) => execute()
      })
      const probe = yield* makeProbe
      const fiber = yield* Effect.fork(
        AgentRun.run(Agent.make({ name: "shop", tools: [orderTool(probe)] }), "buy").pipe(
          Effect.withSpan("request"),
          Effect.annotateSpans("tenant", "t-1"),
          Effect.withTracer(tracer)
        )
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      const run = spans.find((span) => span.name === "AgentRun.run")!
      expect(run.parent).toBe("request")
      expect(Object.fromEntries(run.attributes)).toEqual({
        tenant: "t-1",
        runId: expect.stringMatching(/^run_/),
        agent: "shop"
      })
      const children = spans.filter((span) => span.name === "Agent.turn" || span.name === "Tool.record_order")
      expect(children.map((span) => span.name)).toEqual(["Agent.turn", "Tool.record_order", "Agent.turn"])
      expect(Object.fromEntries(children[0]!.attributes)).toEqual({ tenant: "t-1", agent: "shop" })
      for (const child of children) {
        expect(child.attributes.get("tenant")).toBe("t-1")
        expect(child.parent).toBe("AgentRun.run")
        expect(child.ended).toBeDefined()
        expect(run.ended).toBeGreaterThan(child.ended!)
      }
    }).pipe(
      Effect.provide(
        setup([[ScriptedModel.toolUse("record_order", { id: "o-1", total: 3 })], ScriptedModel.text("Done.")])
      )
    )
  )

  it.effect("with tracing off a run makes no spans, not even no-op ones, around its turns and tool calls", () =>
    Effect.gen(function* () {
      const where = Tool.make({
        name: "where",
        description: "Names the span it runs in",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.currentSpan.pipe(
            Effect.map((span) => span.name),
            Effect.orElseSucceed(() => "none")
          )
      })
      const run = (enabled: boolean) =>
        AgentRun.run(Agent.make({ name: "a", tools: [where] }), "go").pipe(
          Effect.withTracerEnabled(enabled),
          Effect.fork,
          Effect.tap(() => TestClock.adjust("10 seconds")),
          Effect.flatMap(Fiber.join),
          Effect.map((result) => (result.transcript[2]!.content[0] as Message.ToolResultBlock).content)
        )
      expect(yield* run(true)).toBe("Tool.where")
      expect(yield* run(false)).toBe("none")
    }).pipe(
      Effect.provide(
        setup([
          [ScriptedModel.toolUse("where", {})],
          ScriptedModel.text("Done."),
          [ScriptedModel.toolUse("where", {})],
          ScriptedModel.text("Done.")
        ])
      )
    )
  )
})
