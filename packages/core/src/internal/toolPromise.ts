import { Cause, Duration, Effect, Exit, Option, Runtime } from "effect"
import type { Context as PromiseContext } from "../PromiseTool.js"
import * as RunEvent from "../RunEvent.js"
import { StagedWriteError, type Write } from "../StagedWrites.js"
import { currentContext, type RunContext } from "./context.js"
import { describeError } from "./describe.js"
import { make as makeEvent } from "./event.js"
import { stage } from "./staging.js"

/** How many Promises of a tool are still pending after the run let go of them. */
export interface AbandonedCounter {
  count: number
}

const refused = (tool: string) =>
  new StagedWriteError({
    operation: "stage",
    message: `tool "${tool}" was interrupted or has returned; its late write is refused`
  })

const stageWith =
  (tool: string, run: Option.Option<RunContext>, runtime: Runtime.Runtime<never>, isOpen: () => boolean) =>
  (write: Write): Promise<void> => {
    if (!isOpen()) return Promise.reject(refused(tool))
    if (Option.isNone(run)) {
      return Promise.reject(
        new StagedWriteError({ operation: "stage", message: "the tool does not run in an agent run" })
      )
    }
    return Runtime.runPromiseExit(runtime)(stage(run.value, write)).then((exit) => {
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
    })
  }

/**
 * The handler of a `PromiseTool`. The Promise gets an `AbortSignal` that is
 * aborted when the tool is interrupted; the interruption then waits for the
 * Promise at most `abandonAfter`, reports `ToolAbandoned` and lets go of it.
 */
export const handler =
  <I, O, E>(
    tool: string,
    run: (input: I, signal: AbortSignal, context: PromiseContext) => PromiseLike<O>,
    abandonAfter: Duration.Duration,
    abandoned: AbandonedCounter,
    rejected: (message: string) => E
  ) =>
  (input: I): Effect.Effect<O, E> =>
    Effect.gen(function* () {
      const ctx = yield* currentContext
      const toolUseId = Option.match(ctx, { onNone: () => "unknown", onSome: (run) => run.toolUseId ?? "unknown" })
      const runtime = yield* Effect.runtime<never>()
      return yield* Effect.async<O, E>((resume) => {
        const controller = new AbortController()
        // Writes are accepted only while the tool's fiber waits for the Promise.
        let isOpen = true
        let isInterrupted = false
        let isSettled = false
        const context: PromiseContext = { toolUseId, stage: stageWith(tool, ctx, runtime, () => isOpen) }
        let promise: Promise<O>
        try {
          promise = Promise.resolve(run(input, controller.signal, context))
        } catch (error) {
          promise = Promise.reject(error)
        }
        // Both outcomes are handled here, so a Promise that rejects late never goes unhandled.
        const settled = promise.then(
          (value) => {
            isOpen = false
            isSettled = true
            if (!isInterrupted) resume(Effect.succeed(value))
          },
          (error) => {
            isOpen = false
            isSettled = true
            if (!isInterrupted) resume(Effect.fail(rejected(describeError(error))))
          }
        )
        return Effect.suspend(() => {
          isInterrupted = true
          isOpen = false
          controller.abort()
          if (isSettled) return Effect.void
          // A canceler runs uninterruptibly: only an interruptible wait can lose the race against the grace period.
          return Effect.interruptible(Effect.promise(() => settled)).pipe(
            Effect.timeoutOption(abandonAfter),
            // A second interruption cuts the grace period short: the Promise is abandoned all the same.
            Effect.onInterrupt(() => reportAbandoned(tool, toolUseId, ctx, abandonAfter, settled, abandoned)),
            Effect.flatMap(
              Option.match({
                onSome: () => Effect.void,
                onNone: () => reportAbandoned(tool, toolUseId, ctx, abandonAfter, settled, abandoned)
              })
            )
          )
        })
      })
    })

const reportAbandoned = (
  tool: string,
  toolUseId: string,
  ctx: Option.Option<RunContext>,
  after: Duration.Duration,
  settled: Promise<void>,
  abandoned: AbandonedCounter
) =>
  Effect.suspend(() => {
    abandoned.count++
    void settled.then(() => {
      abandoned.count--
    })
    const afterMillis = Duration.toMillis(after)
    return Effect.logWarning(`tool "${tool}" ignored its abort signal; abandoned after ${afterMillis} ms`).pipe(
      Effect.annotateLogs({ tool, toolUseId }),
      Effect.zipRight(
        Option.match(ctx, {
          onNone: () => Effect.void,
          onSome: (run) => run.emit((c) => makeEvent(RunEvent.ToolAbandoned, c, { toolUseId, tool, afterMillis }))
        })
      )
    )
  })

/** How many Promises of a tool the run let go of are still pending. */
export const pendingAbandoned = (abandoned: AbandonedCounter): Effect.Effect<number> =>
  Effect.sync(() => abandoned.count)
