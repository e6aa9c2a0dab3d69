/**
 * Tools that run blocking or CPU-heavy work in a worker thread. The worker
 * module gets the encoded input as a message and posts back
 * `{ ok: true, value }` or `{ ok: false, error }` (`WorkerTool.workerMain`
 * writes that side). Threads come from a pool of `poolSize` (default: cores
 * - 1, between 1 and 4) started at the tool's first call, so a run tree never
 * runs more of them at once. Interrupting the tool (its run cancelled, its
 * timeout reached) terminates its thread and waits for the thread to exit; the
 * pool starts a replacement. Idle threads never keep the process alive.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { WorkerTool } from "@tether/node"
 *
 * const hash = WorkerTool.make({
 *   name: "hash_file",
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
import type { Duration, Effect, Schema } from "effect"
import { Tool } from "@tether/core"
import * as internal from "./internal/workerPool.js"

/**
 * The worker of a `WorkerTool` failed, exited or answered something unexpected.
 *
 * @since 0.1.0
 * @category errors
 */
export const WorkerToolError = internal.WorkerToolError
/** @since 0.1.0 @category errors */
export type WorkerToolError = internal.WorkerToolError

/** The threads of a `WorkerTool`. @since 0.1.0 @category models */
export interface Stats {
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

/** @since 0.1.0 @category models */
export interface WorkerTool<in out I, in out O> extends Tool.Tool<I, O, WorkerToolError> {
  readonly handler: (input: I) => Effect.Effect<O, WorkerToolError>
  /** The pool's threads now. */
  readonly workers: Effect.Effect<Stats>
  /** Terminates every thread of the pool; a later call starts a new pool. */
  readonly shutdown: Effect.Effect<void>
}

/** @since 0.1.0 @category models */
export interface Options<I, IE, O, OE> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  /** The worker module: a file URL or path. */
  readonly module: URL | string
  readonly timeout?: Duration.DurationInput | undefined
  /** Threads of the pool. Default: cores - 1, between 1 and 4. */
  readonly poolSize?: number | undefined
  /** Node options of the worker threads (default: those of this process). */
  readonly execArgv?: ReadonlyArray<string> | undefined
}

/**
 * Makes a tool whose calls run in the worker module's threads.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I, IE, O, OE>(options: Options<I, IE, O, OE>): WorkerTool<I, O> => {
  const pool = internal.makeWorkerPool({
    tool: options.name,
    module: options.module,
    size: options.poolSize,
    execArgv: options.execArgv
  })
  const handler = internal.handler(options.name, options.input, options.output, pool)
  return Object.assign(
    Tool.make({
      name: options.name,
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    { handler, workers: pool.stats, shutdown: pool.shutdown }
  )
}

/**
 * The worker side: call it once in the worker module with the function to run
 * on each input (a throw or rejection becomes the tool's `WorkerToolError`).
 *
 * @example
 * ```ts
 * // hashWorker.ts
 * import { createHash } from "node:crypto"
 * import { readFileSync } from "node:fs"
 * import { WorkerTool } from "@tether/node"
 *
 * WorkerTool.workerMain(({ path }: { path: string }) => createHash("sha256").update(readFileSync(path)).digest("hex"))
 * ```
 *
 * @since 0.1.0
 * @category worker side
 */
export const workerMain: <I, O>(run: (input: I) => O | PromiseLike<O>) => void = internal.workerMain
