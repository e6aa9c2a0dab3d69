/**
 * A tool the model may call: a name, a description, Schema-typed input and
 * output, and an Effect handler. The handler runs as a child fiber of the run,
 * so interrupting the run interrupts it; a bad input from the model (JSON that
 * does not parse, a Schema mismatch, an unknown tool) goes back to the model as
 * an error tool result and never crashes the run.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Tool } from "@tether/core"
 *
 * const add = Tool.make("add", {
 *   description: "Adds two numbers",
 *   input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
 *   output: Schema.Number,
 *   handler: ({ a, b }) => Effect.succeed(a + b),
 *   timeout: "5 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Duration, JSONSchema, Schema } from "effect"
import type { Effect } from "effect"
import type { ToolDefinition } from "./LanguageModel.js"
import type { Write } from "./StagedWrites.js"
import * as toolPromise from "./internal/toolPromise.js"
import { describeError as describe } from "./internal/describe.js"

/** The model's input for a tool did not decode. @since 0.1.0 */
export class ToolInputError extends Schema.TaggedError<ToolInputError>()("ToolInputError", {
  tool: Schema.String,
  issue: Schema.String
}) {}

/** The model asked for a tool the agent does not have. @since 0.1.0 */
export class UnknownToolError extends Schema.TaggedError<UnknownToolError>()("UnknownToolError", {
  tool: Schema.String,
  available: Schema.Array(Schema.String)
}) {}

/** A tool ran past its timeout and was interrupted. @since 0.1.0 */
export class ToolTimeoutError extends Schema.TaggedError<ToolTimeoutError>()("ToolTimeoutError", {
  tool: Schema.String,
  millis: Schema.Number
}) {}

/** @since 0.1.0 */
export interface Tool<in out I, in out O, out R> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, any>
  readonly output: Schema.Schema<O, any>
  readonly handler: (input: I) => Effect.Effect<O, unknown, R>
  readonly timeout: Duration.Duration | undefined
  /** What the model sees: name, description and the JSON Schema of the input. */
  readonly definition: ToolDefinition
}

/** Any tool; `R` is what its handler needs. @since 0.1.0 */
export interface Any<R = any> extends Tool<any, any, R> {}

/** The services the handlers of a list of tools need. @since 0.1.0 */
export type Requirements<Tools extends ReadonlyArray<Any>> = RequirementsOf<Tools[number]>

type RequirementsOf<T> = T extends Tool<any, any, infer R> ? R : never

/**
 * Makes a tool. Failures of the handler go back to the model as an error tool
 * result; a handler that runs past `timeout` is interrupted and reported the same way.
 *
 * @since 0.1.0
 */
export const make = <I, IE, O, OE, R>(
  name: string,
  options: {
    readonly description: string
    readonly input: Schema.Schema<I, IE>
    readonly output: Schema.Schema<O, OE>
    readonly handler: (input: I) => Effect.Effect<O, unknown, R>
    readonly timeout?: Duration.DurationInput | undefined
  }
): Tool<I, O, R> => ({
  name,
  description: options.description,
  input: options.input,
  output: options.output,
  handler: options.handler,
  timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout),
  definition: { name, description: options.description, inputSchema: JSONSchema.make(options.input) }
})

/**
 * A readable one-line message for any failure a tool may produce (a tagged error, a `ParseError`, an `Error`, any
 * value): what the model is told when a tool fails. Never throws.
 *
 * @since 0.1.0
 */
export const describeError: (error: unknown) => string = describe

// Tools that do not cooperate: Promises. (Worker threads and child processes are in @tether/node.)

/** The Promise of a `Tool.fromPromise` tool rejected. @since 0.1.0 */
export class ToolPromiseError extends Schema.TaggedError<ToolPromiseError>()("ToolPromiseError", {
  tool: Schema.String,
  message: Schema.String
}) {}

/**
 * What the Promise of a `Tool.fromPromise` tool can reach of its run.
 *
 * @since 0.1.0
 */
export interface PromiseContext {
  readonly toolUseId: string
  /**
   * Stages a write in the run, like `AgentRun.stage`. Rejects with
   * `StagedWriteError` once the tool was interrupted (cancel, timeout) or its
   * Promise settled: work the run let go of never lands.
   */
  readonly stage: (write: Write) => Promise<void>
}

/** @since 0.1.0 */
export interface PromiseTool<in out I, in out O> extends Tool<I, O, never> {
  readonly handler: (input: I) => Effect.Effect<O, ToolPromiseError>
  /** Promises of this tool that the run abandoned and that have not settled yet. */
  readonly abandoned: Effect.Effect<number>
}

/**
 * Makes a tool from a Promise function. Interrupting the tool aborts `signal`
 * and waits for the Promise at most `abandonAfter` (default 2 seconds): a
 * Promise that ignores its signal is then abandoned (the run reports
 * `ToolAbandoned` and goes on ending), its writes through `context.stage` are
 * refused from the moment of the interruption, and its late result or
 * rejection is dropped. Keep `abandonAfter` below the run's `cancelDeadline`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { StagedWrites, Tool } from "@tether/core"
 *
 * const fetchPage = Tool.fromPromise("fetch_page", {
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
export const fromPromise = <I, IE, O, OE>(
  name: string,
  options: {
    readonly description: string
    readonly input: Schema.Schema<I, IE>
    readonly output: Schema.Schema<O, OE>
    readonly run: (input: I, signal: AbortSignal, context: PromiseContext) => PromiseLike<O>
    readonly timeout?: Duration.DurationInput | undefined
    readonly abandonAfter?: Duration.DurationInput | undefined
  }
): PromiseTool<I, O> => {
  const abandoned: toolPromise.AbandonedCounter = { count: 0 }
  const abandonAfter = Duration.decode(options.abandonAfter ?? "2 seconds")
  const handler = toolPromise.handler(name, options.run, abandonAfter, abandoned)
  return {
    ...make(name, {
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    handler,
    abandoned: toolPromise.pendingAbandoned(abandoned)
  }
}
