/**
 * Tools whose work is a Promise. Interrupting the tool (its run cancelled, its
 * timeout reached) aborts the Promise's `signal` and waits for the Promise at
 * most `abandonAfter` (default 2 seconds): a Promise that ignores its signal
 * is then abandoned (the run reports `ToolAbandoned` and goes on ending), its
 * writes through `context.stage` are refused from the moment of the
 * interruption, and its late result or rejection is dropped. Keep
 * `abandonAfter` below the run's `cancelDeadline`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { PromiseTool, StagedWrites } from "@tether/core"
 *
 * const fetchPage = PromiseTool.make({
 *   name: "fetch_page",
 *   description: "Downloads a web page and stores it",
 *   input: Schema.Struct({ url: Schema.String }),
 *   output: Schema.String,
 *   abandonAfter: "1 second",
 *   run: async ({ url }, signal, run) => {
 *     const page = await (await fetch(url, { signal })).text()
 *     await run.stage(StagedWrites.upsert("pages", url, page))
 *     return page.slice(0, 2000)
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Duration, Schema } from "effect"
import type { Effect } from "effect"
import type { Write } from "./StagedWrites.js"
import * as Tool from "./Tool.js"
import * as internal from "./internal/toolPromise.js"

/** The Promise of a `PromiseTool` rejected. @since 0.1.0 @category errors */
export class PromiseToolError extends Schema.TaggedError<PromiseToolError>()("PromiseToolError", {
  tool: Schema.String,
  message: Schema.String
}) {}

/** What the Promise of a `PromiseTool` can reach of its run. @since 0.1.0 @category models */
export interface Context {
  readonly toolUseId: string
  /**
   * Stages a write in the run, like `AgentRun.stage`. Rejects with
   * `StagedWriteError` once the tool was interrupted (cancel, timeout) or its
   * Promise settled: work the run let go of never lands.
   */
  readonly stage: (write: Write) => Promise<void>
}

/** @since 0.1.0 @category models */
export interface PromiseTool<in out I, in out O> extends Tool.Tool<I, O, PromiseToolError> {
  /** Promises of this tool that the run abandoned and that have not settled yet. */
  readonly abandoned: Effect.Effect<number>
}

/** What `make` takes. @since 0.1.0 @category models */
export interface Options<I, IE, O, OE> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly run: (input: I, signal: AbortSignal, context: Context) => PromiseLike<O>
  readonly timeout?: Duration.DurationInput | undefined
  /** How long an interrupted Promise is waited for before it is abandoned. Default 2 seconds. */
  readonly abandonAfter?: Duration.DurationInput | undefined
}

/**
 * Makes a tool from a Promise function.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I, IE, O, OE>(options: Options<I, IE, O, OE>): PromiseTool<I, O> => {
  const abandoned: internal.AbandonedCounter = { count: 0 }
  const abandonAfter = Duration.decode(options.abandonAfter ?? "2 seconds")
  const handler = internal.handler(
    options.name,
    options.run,
    abandonAfter,
    abandoned,
    (message) => new PromiseToolError({ tool: options.name, message })
  )
  return Object.assign(
    Tool.make({
      name: options.name,
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    { abandoned: internal.pendingAbandoned(abandoned) }
  )
}
