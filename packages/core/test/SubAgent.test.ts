import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Option, Schema, Stream, TestClock, Tracer } from "effect"
import { Agent, AgentRun, CancelReason, LanguageModel, StagedWrites, Tool } from "@tether/core"
import type { RunEvent } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const researcher = Agent.make({ name: "researcher", system: "You research." })

const delegate = Tool.make({
  name: "delegate",
  description: "Asks the researcher",
  input: Schema.Struct({ topic: Schema.String }),
  output: Schema.String,
  handler: ({ topic }) =>
    Effect.gen(function* () {
      yield* AgentRun.stage(StagedWrites.upsert("notes", topic, "pending"))
      const result = yield* AgentRun.run(researcher, `Research ${topic}`)
      return result.text
    })
})

const lead = Agent.make({ name: "lead", tools: [delegate] })

/** The lead delegates once; the researcher streams slowly. */
const script: ScriptedModel.Script = (request, index) =>
  request.system === "You research."
    ? ScriptedModel.text("finding ".repeat(20), { chunks: 20, delay: "1 second" })
    : index === 0
      ? [ScriptedModel.toolUse("delegate", { topic: "fibers" })]
      : ScriptedModel.text("Summary.")

const env = Layer.mergeAll(ScriptedModel.layer(script), StagedWrites.layerMemory)

describe("sub-agents", () => {
  it.effect("cancelling the parent closes the sub-agent's stream and rolls back the whole tree", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(lead, "go", { onLeak: "die" })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("3500 millis")
      const outcome = yield* run.cancel(new CancelReason.UserAbort())
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.openStreams).toBe(0)
      expect(yield* recorder.requests).toHaveLength(2)
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      const fromResearcher = all.filter((event) => event.agent === "lead/researcher" && event._tag === "TextDelta")
      expect(fromResearcher).toHaveLength(3)
      expect(all.some((event) => event._tag === "ToolInterrupted")).toBe(true)
      expect((yield* Effect.flatMap(StagedWrites.MemoryStore, (store) => store.snapshot)).size).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(env))
  )

  it.effect("a sub-agent draws from the parent's token budget", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(lead, "go", { tokenBudget: 600 })
      yield* TestClock.adjust("1 minute")
      expect((yield* run.outcome)._tag).toBe("Completed")
      const recorder = yield* ScriptedModel.ScriptedModel
      const [, researcherRequest] = yield* recorder.requests
      // On a ledger of its own the researcher could ask for everything but its input; on the shared one,
      // what the lead already spent is gone too.
      const ownInput = LanguageModel.estimateInputTokens(researcherRequest!)
      expect(researcherRequest!.maxTokens).toBeLessThan(600 - ownInput)
      const ledger = yield* run.tokens
      expect(ledger.used).toBeLessThanOrEqual(600)
      expect(ledger.reserved).toBe(ledger.settled + ledger.released)
    }).pipe(Effect.scoped, Effect.provide(env))
  )
})

/** A lead whose tool runs the researcher with `options`, reporting the researcher's failure to the model. */
const leadWith = (options: AgentRun.RunOptions) =>
  Agent.make({
    name: "lead",
    tools: [
      Tool.make({
        name: "delegate",
        description: "Asks the researcher",
        input: Schema.Struct({ topic: Schema.String }),
        output: Schema.String,
        handler: ({ topic }) => Effect.map(AgentRun.run(researcher, `Research ${topic}`, options), (r) => r.text)
      })
    ]
  })

/** The parent delegates once; the helper calls its probe once, then answers. */
const turns: ScriptedModel.Script = (request, index) =>
  request.tools.some((tool) => tool.name === "probe")
    ? index === 1
      ? [ScriptedModel.toolUse("probe", {})]
      : ScriptedModel.text("probed")
    : index === 0
      ? [ScriptedModel.toolUse("delegate", {})]
      : ScriptedModel.text("done")

describe("sub-agents with options of their own", () => {
  it.effect("past its own timeout the sub-agent is stopped (its stream closed) and the parent goes on", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(leadWith({ timeout: "2500 millis" }), "go", { onLeak: "die" })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("1 minute")
      const outcome = yield* run.outcome
      expect(outcome._tag).toBe("Completed")
      const recorder = yield* ScriptedModel.ScriptedModel
      expect(yield* recorder.openStreams).toBe(0)
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      // The researcher streamed one chunk a second: two before its 2.5 s were up, then nothing.
      expect(all.filter((event) => event.agent === "lead/researcher" && event._tag === "TextDelta")).toHaveLength(2)
      const failed = all.find((event): event is RunEvent.ToolFailed => event._tag === "ToolFailed")
      expect(failed?.error).toMatch(/SubAgentCancelledError: sub-agent lead\/researcher was stopped: .*2500 ms/)
      // The model of the lead was told, and answered.
      expect(yield* recorder.requests).toHaveLength(3)
    }).pipe(Effect.scoped, Effect.provide(env))
  )

  it.effect("past its own token budget (a model that ignores max_tokens) the sub-agent is stopped mid-stream", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(leadWith({ tokenBudget: 60 }), "go", { onLeak: "die" })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("1 minute")
      expect((yield* run.outcome)._tag).toBe("Completed")
      const recorder = yield* ScriptedModel.ScriptedModel
      const [, researcherRequest] = yield* recorder.requests
      // The researcher's max_tokens is clamped by its own ceiling, not just the run's.
      expect(researcherRequest!.maxTokens).toBeLessThanOrEqual(
        60 - LanguageModel.estimateInputTokens(researcherRequest!)
      )
      expect(yield* recorder.openStreams).toBe(0)
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      const failed = all.find((event): event is RunEvent.ToolFailed => event._tag === "ToolFailed")
      expect(failed?.error).toMatch(/SubAgentCancelledError: .*token budget of 60/)
      // Stopped within a chunk of its ceiling: of its 20 chunks of 8 characters (2 tokens each), far fewer went out.
      const streamed = all.filter((event) => event.agent === "lead/researcher" && event._tag === "TextDelta")
      expect(streamed.length).toBeGreaterThan(0)
      expect(streamed.length).toBeLessThan(20)
      const ledger = yield* run.tokens
      expect(ledger.inFlight).toBe(0)
      expect(ledger.reserved).toBe(ledger.settled + ledger.released)
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.mergeAll(ScriptedModel.layer(script, { ignoreMaxTokens: true }), StagedWrites.layerMemory))
    )
  )

  it.effect("a sub-agent given a runId reports its events and CurrentRun under it", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const probe = Tool.make({
        name: "probe",
        description: "Records the run id it runs under",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () => Effect.map(AgentRun.currentRunId, (id) => (seen.push(Option.getOrThrow(id)), "ok"))
      })
      const helper = Agent.make({ name: "helper", tools: [probe] })
      const parent = Agent.make({
        name: "parent",
        tools: [
          Tool.make({
            name: "delegate",
            description: "Runs the helper",
            input: Schema.Struct({}),
            output: Schema.String,
            handler: () => Effect.map(AgentRun.run(helper, "probe", { runId: "helper-1" }), (r) => r.text)
          })
        ]
      })
      const run = yield* AgentRun.start(parent, "go", { runId: "root-1" })
      const events = yield* Effect.fork(Stream.runCollect(run.events))
      yield* TestClock.adjust("1 minute")
      expect((yield* run.outcome)._tag).toBe("Completed")
      expect(seen).toEqual(["helper-1"])
      const all = Chunk.toReadonlyArray(yield* Fiber.join(events))
      expect(new Set(all.filter((e) => e.agent === "parent/helper").map((e) => e.runId))).toEqual(new Set(["helper-1"]))
      expect(new Set(all.filter((e) => e.agent === "parent").map((e) => e.runId))).toEqual(new Set(["root-1"]))
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(ScriptedModel.layer(turns), StagedWrites.layerMemory)))
  )
})

describe("sub-agent spans", () => {
  it.effect("after a sub-agent stopped mid-turn, its caller's spans are children of its own span again", () =>
    Effect.gen(function* () {
      const parents = new Map<string, string | undefined>()
      const recording = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          parents.set(name, Option.isSome(parent) && parent.value._tag === "Span" ? parent.value.name : undefined)
          const span: Tracer.Span = {
            _tag: "Span",
            name,
            spanId: `span-${parents.size}`,
            traceId: "trace",
            parent,
            context,
            status: { _tag: "Started", startTime },
            attributes: new Map(),
            links,
            sampled: true,
            kind,
            end: () => {},
            attribute: () => {},
            event: () => {},
            addLinks: () => {}
          }
          return span
        },
        context: (execute) => execute()
      })
      const lead = Agent.make({
        name: "lead",
        tools: [
          Tool.make({
            name: "delegate",
            description: "Asks the researcher, then notes what became of it",
            input: Schema.Struct({}),
            output: Schema.String,
            handler: () =>
              AgentRun.run(researcher, "Research", { timeout: "2500 millis" }).pipe(
                Effect.map((result) => result.text),
                Effect.catchTag("SubAgentCancelledError", () => Effect.succeed("stopped")),
                Effect.tap(() => Effect.withSpan(Effect.void, "after the sub-agent"))
              )
          })
        ]
      })
      const fiber = yield* Effect.fork(AgentRun.run(lead, "go").pipe(Effect.withTracer(recording)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      // The researcher's turn was interrupted mid-stream and did not put its fiber's parent span back: that fiber is
      // gone, and the tool's own fiber goes on under the tool's span.
      expect(parents.get("after the sub-agent")).toBe("Tool.delegate")
    }).pipe(Effect.provide(env))
  )
})
