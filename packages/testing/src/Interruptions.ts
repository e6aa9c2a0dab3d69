/**
 * Property-test the interruption semantics of your own agent. `Interruptions.check`
 * runs the agent once to the end on a `ScriptedModel`, then once per event of
 * that run, cancelling it right after that event (each model chunk, each tool
 * start and end, each staged write, each subtask), and optionally at random
 * instants. After every run it checks the invariants: no fiber of the run left,
 * no model stream open, every `Interruptions.guard`ed resource released exactly
 * once, no staged write committed by a cancelled run (and all of them by a
 * completed one), a transcript that answers every tool use, a balanced token
 * ledger whose figures add up, and your own `invariants`. It fails with the
 * first interrupt point that broke one, and the events up to it.
 *
 * Run it under `it.effect` (it drives the `TestClock`).
 *
 * @example
 * ```ts
 * import { Effect, Schema, TestContext } from "effect"
 * import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
 * import { Interruptions, ScriptedModel } from "@tether/testing"
 *
 * const book = Tool.make({
 *   name: "book",
 *   description: "Books a table",
 *   input: Schema.Struct({ seats: Schema.Number }),
 *   output: Schema.String,
 *   handler: ({ seats }) => Effect.as(AgentRun.stage(StagedWrites.upsert("bookings", "table-1", { seats })), "booked")
 * })
 * const host = Agent.make({ name: "host", tools: [book] })
 *
 * const check = Interruptions.check({
 *   agent: host,
 *   input: "book a table for two",
 *   script: [[ScriptedModel.toolUse("book", { seats: 2 })], ScriptedModel.text("Booked.")],
 *   randomInstants: 5
 * })
 *
 * // In a test: it.effect("the host stops cleanly wherever it is interrupted", () => check)
 * const report = await Effect.runPromise(check.pipe(Effect.provide(TestContext.TestContext)))
 * console.log(report.points > 0, report.cancelled > 0) // true true
 * ```
 *
 * @since 0.1.0
 */
import {
  Chunk,
  Context,
  Effect,
  Exit,
  Fiber,
  FastCheck,
  Layer,
  Ref,
  Schema,
  Stream,
  Supervisor,
  TestClock
} from "effect"
import type { Duration } from "effect"
import { AgentRun, CancelReason, Message, StagedWrites } from "@tether/core"
import type { Agent, LanguageModel, RunEvent, RunOutcome } from "@tether/core"
import * as ScriptedModel from "./ScriptedModel.js"

/**
 * An interrupt point broke an invariant.
 *
 * @since 0.1.0
 */
export class InterruptionCheckError extends Schema.TaggedError<InterruptionCheckError>()("InterruptionCheckError", {
  point: Schema.String,
  violations: Schema.Array(Schema.String),
  trace: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return [
      `interrupting ${this.point} broke ${this.violations.length} invariant(s):`,
      ...this.violations.map((v) => `  - ${v}`),
      "events of that run:",
      ...this.trace.map((line) => `  ${line}`)
    ].join("\n")
  }
}

/**
 * Counts resources your tools acquire, so the check can prove each was released exactly once.
 *
 * @since 0.1.0
 */
export class Probe extends Context.Tag("@tether/testing/Interruptions/Probe")<
  Probe,
  { readonly acquired: Ref.Ref<number>; readonly released: Ref.Ref<number> }
>() {}

/**
 * Wraps `effect` as a resource the check counts: acquired when it starts,
 * released when it ends in any way. Outside a check it just runs `effect`.
 *
 * @since 0.1.0
 */
export const guard = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(Probe), (probe) =>
    probe._tag === "None"
      ? effect
      : Effect.acquireUseRelease(
          Ref.update(probe.value.acquired, (n) => n + 1),
          () => effect,
          () => Ref.update(probe.value.released, (n) => n + 1)
        )
  )

/**
 * What each run of a check is given: the scripted model and its recorder, an in-memory `StagedWrites` and its
 * store, the resource `Probe`, and the services of your `layer`. Your `invariants` may use any of them.
 *
 * @since 0.1.0
 */
export type Provided<R> =
  | R
  | LanguageModel.LanguageModel
  | ScriptedModel.ScriptedModel
  | StagedWrites.StagedWrites
  | StagedWrites.MemoryStore
  | Probe

/** @since 0.1.0 */
export interface Options<R, RI = never> {
  readonly agent: Agent.Agent<R>
  readonly input: AgentRun.RunInput
  readonly script: ScriptedModel.Script
  /** How the scripted model delivers its events (see `ScriptedModel.Options`). Default `"push"`. */
  readonly delivery?: ScriptedModel.Delivery | undefined
  /** Services the agent's tools need, built afresh for each run. `StagedWrites.layerMemory` is added. */
  readonly layer?: Layer.Layer<R> | undefined
  /** Also interrupt at this many random instants of the reference run's duration (FastCheck). */
  readonly randomInstants?: number | undefined
  /** Checks of your own after each run; return the violations found. */
  readonly invariants?: ((run: RunOutcome.RunOutcome) => Effect.Effect<ReadonlyArray<string>, never, RI>) | undefined
  /** How long the clock may advance for one run. Default 1 hour. */
  readonly horizon?: Duration.DurationInput | undefined
}

/**
 * What the check did.
 *
 * @since 0.1.0
 */
export interface Report {
  readonly points: number
  readonly cancelled: number
  readonly completed: number
}

type Point =
  | { readonly _tag: "None" }
  | { readonly _tag: "AfterEvent"; readonly seq: number }
  | { readonly _tag: "At"; readonly millis: number }

const describePoint = (point: Point, events: ReadonlyArray<RunEvent.RunEvent>): string => {
  switch (point._tag) {
    case "None":
      return "nowhere (the reference run)"
    case "AfterEvent": {
      const event = events.find((e) => e.seq === point.seq)
      return `after event #${point.seq}${event ? ` (${event._tag} of ${event.agent})` : ""}`
    }
    case "At":
      return `at ${point.millis} ms`
  }
}

const traceLine = (event: RunEvent.RunEvent): string => {
  const { runId: _runId, seq, agent, _tag, ...rest } = event as RunEvent.RunEvent & Record<string, unknown>
  return `#${seq} ${_tag} ${agent} ${JSON.stringify(rest)}`
}

const runOnce = <R, RI>(options: Options<R, RI>, point: Point) =>
  Effect.gen(function* () {
    const supervisor = yield* Supervisor.track
    const probe = { acquired: yield* Ref.make(0), released: yield* Ref.make(0) }
    const services: Layer.Layer<Provided<R>> = Layer.mergeAll(
      ScriptedModel.layer(options.script, { delivery: options.delivery }),
      StagedWrites.layerMemory,
      Layer.succeed(Probe, probe),
      options.layer ?? (Layer.empty as Layer.Layer<R>)
    )
    return yield* Effect.scoped(
      Effect.gen(function* () {
        const startedAt = yield* TestClock.currentTimeMillis
        const run = yield* AgentRun.start(options.agent, options.input).pipe(Effect.supervised(supervisor))
        const events = yield* Effect.fork(Stream.runCollect(run.events))
        const endedAt = yield* Effect.fork(Effect.zipRight(run.outcome, TestClock.currentTimeMillis))
        if (point._tag === "AfterEvent") {
          yield* run.events.pipe(
            Stream.filter((event) => event.seq >= point.seq),
            Stream.take(1),
            Stream.runDrain,
            Effect.zipRight(run.cancel(new CancelReason.UserAbort())),
            Effect.fork
          )
        }
        if (point._tag === "At") {
          yield* TestClock.adjust(point.millis)
          yield* run.cancel(new CancelReason.UserAbort())
        }
        yield* TestClock.adjust(options.horizon ?? "1 hour")
        const outcome = yield* run.outcome
        yield* Fiber.await(yield* run.fiber)
        const trace = Chunk.toReadonlyArray(yield* Fiber.join(events))
        const violations: Array<string> = []
        const alive = (yield* supervisor.value).filter((fiber) => fiber.unsafePoll() === null)
        if (alive.length > 0) violations.push(`${alive.length} fiber(s) of the run still alive`)
        const recorder = yield* ScriptedModel.ScriptedModel
        const open = yield* recorder.openStreams
        if (open > 0) violations.push(`${open} model stream(s) still open`)
        const acquired = yield* Ref.get(probe.acquired)
        const released = yield* Ref.get(probe.released)
        if (acquired !== released) violations.push(`${acquired} guarded resource(s) acquired, ${released} released`)
        const store = yield* StagedWrites.MemoryStore
        const committed = yield* store.commits
        const staged = trace.filter((event) => event._tag === "WriteStaged").length
        if (outcome._tag !== "Completed" && committed > 0) violations.push(`a ${outcome._tag} run committed writes`)
        if (outcome._tag === "Completed" && outcome.writesCommitted !== staged) {
          violations.push(`a completed run committed ${outcome.writesCommitted} of ${staged} staged writes`)
        }
        if (point._tag === "None" && outcome._tag !== "Completed") {
          violations.push(
            `the reference run ended ${outcome._tag}${outcome._tag === "Failed" ? `: ${outcome.error}` : ""}`
          )
        }
        const unanswered = Message.unansweredToolUses(outcome.transcript)
        if (unanswered.length > 0) violations.push(`tool uses without a result: ${unanswered.join(", ")}`)
        const ledger = yield* run.tokens
        if (ledger.inFlight > 0) violations.push(`${ledger.inFlight} token reservation(s) never settled`)
        if (ledger.reserved !== ledger.settled + ledger.released) {
          violations.push(
            `ledger does not balance: ${ledger.reserved} reserved, ${ledger.settled} settled, ${ledger.released} released`
          )
        }
        const { estimated, reportedInput, reportedOutput, used } = outcome.tally
        if (used !== outcome.tokensUsed || reportedInput + reportedOutput + estimated !== used) {
          violations.push(
            `token figures do not add up: ${outcome.tokensUsed} used, tally ${reportedInput} + ${reportedOutput} + ${estimated} = ${used}`
          )
        }
        if (options.invariants) violations.push(...(yield* options.invariants(outcome)))
        const exit = yield* Fiber.await(yield* run.fiber)
        if (outcome._tag === "Cancelled" && !Exit.isInterrupted(exit))
          violations.push("a cancelled run did not exit Interrupted")
        if (violations.length > 0) {
          return yield* new InterruptionCheckError({
            point: describePoint(point, trace),
            violations,
            trace: trace.map(traceLine)
          })
        }
        return { outcome, trace, elapsed: (yield* Fiber.join(endedAt)) - startedAt }
      })
    ).pipe(Effect.provide(services))
  })

/**
 * Interrupts the agent after every event of a reference run, and at random
 * instants if asked, checking the invariants after each run.
 *
 * @since 0.1.0
 */
export const check = <R, RI = never>(
  options: Options<R, RI>
): Effect.Effect<Report, InterruptionCheckError, Exclude<RI, Provided<R>>> =>
  Effect.gen(function* () {
    const reference = yield* runOnce(options, { _tag: "None" })
    const lastSeq = reference.trace.length
    const points: Array<Point> = Array.from({ length: lastSeq - 1 }, (_, i) => ({ _tag: "AfterEvent", seq: i + 1 }))
    if (options.randomInstants !== undefined && options.randomInstants > 0) {
      const instants = FastCheck.sample(
        FastCheck.integer({ min: 0, max: Math.max(1, reference.elapsed) }),
        options.randomInstants
      )
      points.push(...instants.map((millis): Point => ({ _tag: "At", millis })))
    }
    let cancelled = 0
    let completed = 1
    for (const point of points) {
      const { outcome } = yield* runOnce(options, point)
      if (outcome._tag === "Completed") completed++
      else cancelled++
    }
    return { points: points.length + 1, cancelled, completed }
  })
