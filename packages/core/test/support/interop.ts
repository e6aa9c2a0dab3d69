/** Helpers of the tests of tools that do not cooperate (Promise tools here; worker and command tools in @tether/node). */
import { afterAll, expect } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Schema, Stream } from "effect"
import { AgentRun, CancelReason, PromiseTool, StagedWrites } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

/** Latencies measured by the tests, printed at the end. */
const figures: Record<string, Array<number>> = {}
export const record = (name: string, millis: number) => {
  ;(figures[name] ??= []).push(Math.round(millis * 10) / 10)
}
afterAll(() => {
  if (Object.keys(figures).length > 0) console.info(`tool interop figures (ms): ${JSON.stringify(figures)}`)
})

export const setup = (script: ScriptedModel.Script) =>
  Layer.mergeAll(ScriptedModel.layer(script), StagedWrites.layerMemory)

/**
 * The messages logged at Warning or above, kept instead of printed: a test that expects a warning asserts on it,
 * and the test output stays clean.
 */
export const makeWarnings = () => {
  const lines: Array<string> = []
  const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
      lines.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
    }
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

export const committed = Effect.flatMap(StagedWrites.MemoryStore, (store) =>
  Effect.all([store.snapshot, store.commits])
)

/** Polls `condition` every 5 ms; dies after 5 seconds. */
export const eventually = (label: string, condition: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 5_000
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${label}`)
      yield* Effect.sleep("5 millis")
    }
  })

/** Cancels a run and measures how long the cancel took. */
export const timedCancel = (run: AgentRun.AgentRun) =>
  Effect.gen(function* () {
    const startedAt = performance.now()
    const outcome = yield* run.cancel(new CancelReason.UserAbort())
    return { outcome, millis: performance.now() - startedAt }
  })

/** The run's fiber ended interrupted, and not by a defect (with `onLeak: "die"`, a leaked fiber is one). */
export const expectInterruptedOnly = (run: AgentRun.AgentRun) =>
  Effect.gen(function* () {
    const exit = yield* Fiber.await(yield* run.fiber)
    expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
  })

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

export const collectEvents = (run: AgentRun.AgentRun) =>
  Effect.fork(Stream.runCollect(run.events).pipe(Effect.map(Chunk.toReadonlyArray)))

/** A Promise tool that waits 10 s unless aborted. */
export const cooperative = PromiseTool.make({
  name: "cooperative",
  description: "Waits 10 s unless aborted",
  input: Schema.Struct({}),
  output: Schema.String,
  run: (_input, signal) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => resolve("waited"), 10_000)
      signal.addEventListener("abort", () => {
        clearTimeout(timer)
        reject(signal.reason)
      })
    })
})

/** A Promise tool that ignores its signal, stages before and after a wait, and reports how its late write went. */
export const stubbornFor = (options: {
  readonly abandonAfter: Duration.DurationInput
  readonly resolveAfterMillis: number
  readonly onLateWrite: (error: unknown) => void
}) =>
  PromiseTool.make({
    name: "stubborn",
    description: "Ignores its abort signal",
    input: Schema.Struct({}),
    output: Schema.String,
    abandonAfter: options.abandonAfter,
    run: async (_input, _signal, run) => {
      await run.stage(StagedWrites.upsert("early", "k", 1))
      await sleep(options.resolveAfterMillis)
      options.onLateWrite(
        await run.stage(StagedWrites.upsert("late", "k", 1)).then(
          () => undefined,
          (e) => e
        )
      )
      return "finished anyway"
    }
  })
