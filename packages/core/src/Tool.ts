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
import * as toolCommand from "./internal/toolCommand.js"
import * as toolPromise from "./internal/toolPromise.js"
import * as toolWorker from "./internal/toolWorker.js"

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

// Tools that do not cooperate: Promises, worker threads, child processes.

/** The Promise of a `Tool.fromPromise` tool rejected. @since 0.1.0 */
export class ToolPromiseError extends Schema.TaggedError<ToolPromiseError>()("ToolPromiseError", {
  tool: Schema.String,
  message: Schema.String
}) {}

/** The worker of a `Tool.inWorker` tool failed, exited or answered something unexpected. @since 0.1.0 */
export class ToolWorkerError extends Schema.TaggedError<ToolWorkerError>()("ToolWorkerError", {
  tool: Schema.String,
  message: Schema.String
}) {}

/** The command of a `Tool.command` tool could not start, exited non-zero or printed unexpected output. @since 0.1.0 */
export class ToolCommandError extends Schema.TaggedError<ToolCommandError>()("ToolCommandError", {
  tool: Schema.String,
  message: Schema.String,
  exitCode: Schema.NullOr(Schema.Number),
  /** The end of what the command wrote to stderr. */
  stderr: Schema.String
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

/** The threads of a `Tool.inWorker` tool. @since 0.1.0 */
export interface WorkerStats {
  /** Threads started and not yet exited. */
  readonly live: number
  /** Threads running a call. */
  readonly busy: number
  /** Threads started since the tool was made. */
  readonly started: number
  /** Threads that exited since the tool was made. */
  readonly exited: number
  /** The `threadId` of every live thread. */
  readonly threadIds: ReadonlyArray<number>
}

/** @since 0.1.0 */
export interface WorkerTool<in out I, in out O> extends Tool<I, O, never> {
  readonly handler: (input: I) => Effect.Effect<O, ToolWorkerError>
  readonly workers: Effect.Effect<WorkerStats>
  /** Terminates every thread of the pool; a later call starts a new pool. */
  readonly shutdown: Effect.Effect<void>
}

/**
 * Makes a tool that runs blocking or CPU-heavy work in a worker thread. The
 * worker module gets the encoded input as a message and posts back
 * `{ ok: true, value }` or `{ ok: false, error }` (see `Tool.workerMain`).
 * Threads come from a pool of `poolSize` (default: cores - 1, between 1 and 4)
 * started at the tool's first call, so a run tree never runs more of them at
 * once. Interrupting the tool terminates its thread and waits for it to exit;
 * the pool starts a replacement. Idle threads never keep the process alive.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Tool } from "@tether/core"
 *
 * const hash = Tool.inWorker("hash_file", {
 *   description: "Hashes a large file",
 *   input: Schema.Struct({ path: Schema.String }),
 *   output: Schema.String,
 *   module: new URL("./hashWorker.js", import.meta.url),
 *   poolSize: 2
 * })
 * ```
 *
 * @since 0.1.0
 */
export const inWorker = <I, IE, O, OE>(
  name: string,
  options: {
    readonly description: string
    readonly input: Schema.Schema<I, IE>
    readonly output: Schema.Schema<O, OE>
    /** The worker module: a file URL or path. */
    readonly module: URL | string
    readonly timeout?: Duration.DurationInput | undefined
    readonly poolSize?: number | undefined
    /** Node options of the worker threads (default: those of this process). */
    readonly execArgv?: ReadonlyArray<string> | undefined
  }
): WorkerTool<I, O> => {
  const pool = toolWorker.makeWorkerPool({
    tool: name,
    module: options.module,
    size: options.poolSize,
    execArgv: options.execArgv
  })
  const handler = toolWorker.handler(name, options.input, options.output, pool)
  return {
    ...make(name, {
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    handler,
    workers: pool.stats,
    shutdown: pool.shutdown
  }
}

/**
 * The worker side of `Tool.inWorker`: call it once in the worker module with
 * the function to run on each input (a throw or rejection becomes the tool's
 * `ToolWorkerError`).
 *
 * @example
 * ```ts
 * // hashWorker.ts
 * import { createHash } from "node:crypto"
 * import { readFileSync } from "node:fs"
 * import { Tool } from "@tether/core"
 *
 * Tool.workerMain(({ path }: { path: string }) => createHash("sha256").update(readFileSync(path)).digest("hex"))
 * ```
 *
 * @since 0.1.0
 */
export const workerMain: <I, O>(run: (input: I) => O | PromiseLike<O>) => void = toolWorker.workerMain

/** What `Tool.command` runs. `env` is added to this process's environment. @since 0.1.0 */
export interface CommandSpec {
  readonly cmd: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly cwd?: string | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

/** @since 0.1.0 */
export interface CommandTool<in out I, in out O> extends Tool<I, O, never> {
  readonly handler: (input: I) => Effect.Effect<O, ToolCommandError>
  /** The pids of this tool's commands still running (each leads its own process group). */
  readonly running: Effect.Effect<ReadonlyArray<number>>
}

/**
 * Makes a tool that runs a child process. The command leads its own process
 * group; interrupting the tool sends SIGTERM to the whole group, SIGKILL once
 * the command exited or after `killGrace` (default 1 second), and waits for
 * its exit. When the command exits by itself, what it left running in its
 * group is killed too. Its stdout, through `parse` when given, is decoded with
 * `output`. (POSIX only: process groups.)
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Tool } from "@tether/core"
 *
 * const grep = Tool.command("grep", {
 *   description: "Lines of the repository matching a pattern",
 *   input: Schema.Struct({ pattern: Schema.String }),
 *   output: Schema.Array(Schema.String),
 *   command: ({ pattern }) => ({ cmd: "git", args: ["grep", "-n", pattern], cwd: "/srv/repo" }),
 *   parse: (stdout) => stdout.split("\n").filter((line) => line.length > 0),
 *   timeout: "30 seconds"
 * })
 * ```
 *
 * @since 0.1.0
 */
export const command = <I, IE, O, OE>(
  name: string,
  options: {
    readonly description: string
    readonly input: Schema.Schema<I, IE>
    readonly output: Schema.Schema<O, OE>
    readonly command: (input: I) => CommandSpec
    readonly parse?: ((stdout: string) => O) | undefined
    readonly timeout?: Duration.DurationInput | undefined
    readonly killGrace?: Duration.DurationInput | undefined
  }
): CommandTool<I, O> => {
  const running: toolCommand.RunningSet = new Set()
  const handler = toolCommand.handler(name, {
    command: options.command,
    output: options.output,
    parse: options.parse,
    killGrace: Duration.decode(options.killGrace ?? "1 second"),
    running
  })
  return {
    ...make(name, {
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    handler,
    running: toolCommand.runningPids(running)
  }
}
