/**
 * Worker threads for `WorkerTool`, straight on `node:worker_threads`.
 *
 * Why not `@effect/platform/Worker`: it needs a platform layer
 * (`NodeWorker.layer` of @effect/platform-node) provided to every run, and its
 * own message protocol on the worker side. The
 * one thing this module needs, `worker.terminate()` on interruption with the
 * thread's `exit` awaited, is a few lines here, and the worker side stays a
 * plain `parentPort` listener that any module can implement.
 *
 * The workers of a tool live in an effect `Pool` of a fixed size, so a run tree
 * never starts more threads than that however many calls it makes. A worker
 * whose call was interrupted is terminated and invalidated; the pool starts a
 * replacement.
 */
import { availableParallelism } from "node:os"
import { parentPort, Worker } from "node:worker_threads"
import { Effect, Exit, FiberRef, ParseResult, Pool, Schema, Scope, Supervisor } from "effect"
import { Tool } from "@tether/core"
import type { Stats } from "../WorkerTool.js"

const { describeError } = Tool

/** The worker of a `WorkerTool` failed, exited or answered something unexpected. */
export class WorkerToolError extends Schema.TaggedError<WorkerToolError>()("WorkerToolError", {
  tool: Schema.String,
  message: Schema.String
}) {}

/** One worker thread of a pool. */
interface WorkerHandle {
  readonly worker: Worker
  readonly threadId: number
  /** Resolves once the thread has exited. */
  readonly exited: Promise<void>
  /** True once the worker cannot take another call: it exited, failed or was terminated. */
  isBroken: boolean
  failure: string | undefined
}

export interface WorkerPoolOptions {
  readonly tool: string
  readonly module: URL | string
  readonly size?: number | undefined
  readonly execArgv?: ReadonlyArray<string> | undefined
}

export interface WorkerPool {
  readonly call: (input: unknown) => Effect.Effect<unknown, WorkerToolError>
  readonly stats: Effect.Effect<Stats>
  readonly shutdown: Effect.Effect<void>
}

/** Threads a pool keeps by default: one per core but one, between 1 and 4. */
export const defaultPoolSize = (): number => Math.max(1, Math.min(4, availableParallelism() - 1))

/**
 * The pool's own fibers (it starts replacements in the background) belong to
 * the pool, which outlives any run, not to the run that happened to trigger
 * them: they are kept out of the run's leak supervisor.
 */
const outsideRunSupervision = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.locally(effect, FiberRef.currentSupervisor, Supervisor.none)

export const makeWorkerPool = (options: WorkerPoolOptions): WorkerPool => {
  const { tool } = options
  const size = Math.max(1, Math.floor(options.size ?? defaultPoolSize()))
  const live = new Set<number>()
  let started = 0
  let exited = 0
  let busy = 0

  const spawn = (): WorkerHandle => {
    const worker = new Worker(
      options.module,
      options.execArgv === undefined ? {} : { execArgv: Array.from(options.execArgv) }
    )
    // An idle worker never keeps the process alive; a busy one does (see `exchange`).
    worker.unref()
    started++
    const threadId = worker.threadId
    live.add(threadId)
    const handle: WorkerHandle = {
      worker,
      threadId,
      isBroken: false,
      failure: undefined,
      exited: new Promise<void>((resolve) =>
        worker.once("exit", (code) => {
          live.delete(threadId)
          exited++
          handle.isBroken = true
          handle.failure ??= `the worker exited with code ${code}`
          resolve()
        })
      )
    }
    // Always listened to: an unhandled 'error' event would be an uncaught exception of the main thread.
    worker.on("error", (error) => {
      handle.isBroken = true
      handle.failure = describeError(error)
    })
    return handle
  }

  const terminate = (handle: WorkerHandle) => Effect.promise(() => handle.worker.terminate().then(() => handle.exited))

  const acquire = Effect.acquireRelease(
    Effect.try({ try: spawn, catch: (error) => new WorkerToolError({ tool, message: describeError(error) }) }),
    terminate
  )

  const makeGeneration = () => {
    const scope = Effect.runSync(Scope.make())
    const pool = Effect.runSync(Effect.cached(Scope.extend(Pool.make({ acquire, size }), scope)))
    return { scope, pool }
  }
  let generation = makeGeneration()

  const fail = (message: string) => Effect.fail(new WorkerToolError({ tool, message }))

  const reply = (handle: WorkerHandle, message: unknown): Effect.Effect<unknown, WorkerToolError> => {
    if (typeof message === "object" && message !== null && "ok" in message) {
      if (message.ok === true) return Effect.succeed("value" in message ? message.value : undefined)
      if (message.ok === false) return fail("error" in message ? describeError(message.error) : "the worker failed")
    }
    handle.isBroken = true
    return fail("the worker posted a message that is not { ok, value } or { ok: false, error }")
  }

  /** Posts the input to the worker and waits for its reply; interruption terminates the worker. */
  const exchange = (handle: WorkerHandle, input: unknown) =>
    Effect.async<unknown, WorkerToolError>((resume) => {
      if (handle.isBroken) {
        resume(fail(handle.failure ?? "the worker is not usable"))
        return
      }
      let isDone = false
      const finish = () => {
        isDone = true
        busy--
        handle.worker.off("message", onMessage)
        handle.worker.off("exit", onExit)
        handle.worker.unref()
      }
      const onMessage = (message: unknown) => {
        if (isDone) return
        finish()
        resume(reply(handle, message))
      }
      // Registered after the pool's own 'exit' listener, so `failure` is set by the time this runs.
      const onExit = () => {
        if (isDone) return
        finish()
        resume(fail(handle.failure ?? "the worker exited"))
      }
      busy++
      handle.worker.ref()
      handle.worker.on("message", onMessage)
      handle.worker.on("exit", onExit)
      try {
        handle.worker.postMessage(input)
      } catch (error) {
        finish()
        resume(fail(`the input could not be sent to the worker: ${describeError(error)}`))
        return
      }
      return Effect.suspend(() => {
        if (isDone) return Effect.void
        finish()
        handle.isBroken = true
        return terminate(handle)
      })
    })

  /** One call on one worker; `{ failure }` when the pool handed out a worker that died while idle. */
  const attempt = (input: unknown) =>
    Effect.scoped(
      Effect.gen(function* () {
        const pool = yield* generation.pool
        const handle = yield* Pool.get(pool)
        if (handle.isBroken) {
          yield* Pool.invalidate(pool, handle)
          return { failure: handle.failure ?? "the worker is not usable" }
        }
        const value = yield* exchange(handle, input).pipe(
          Effect.onExit(() => (handle.isBroken ? Pool.invalidate(pool, handle) : Effect.void))
        )
        return { value }
      })
    )

  /** A worker found dead is replaced and the call tried once more on another. */
  const call = (input: unknown): Effect.Effect<unknown, WorkerToolError> =>
    outsideRunSupervision(
      Effect.flatMap(attempt(input), (first) =>
        "value" in first
          ? Effect.succeed(first.value)
          : Effect.flatMap(attempt(input), (second) =>
              "value" in second ? Effect.succeed(second.value) : fail(second.failure)
            )
      )
    )

  const stats = Effect.sync((): Stats => ({
    live: live.size,
    busy,
    started,
    exited,
    threadIds: Array.from(live)
  }))

  const shutdown = outsideRunSupervision(
    Effect.suspend(() => {
      const previous = generation
      generation = makeGeneration()
      return Scope.close(previous.scope, Exit.void)
    })
  )

  return { call, stats, shutdown }
}

/** The handler of a `WorkerTool`: the input goes to the worker encoded, its reply is decoded. */
export const handler =
  <I, IE, O, OE>(tool: string, input: Schema.Schema<I, IE>, output: Schema.Schema<O, OE>, pool: WorkerPool) =>
  (value: I): Effect.Effect<O, WorkerToolError> => {
    const invalid = (direction: string) => (error: ParseResult.ParseError) =>
      new WorkerToolError({
        tool,
        message: `${direction}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
      })
    return Schema.encode(input)(value).pipe(
      Effect.mapError(invalid("the input does not encode")),
      Effect.flatMap(pool.call),
      Effect.flatMap((reply) =>
        Schema.decodeUnknown(output)(reply).pipe(Effect.mapError(invalid("the worker's reply does not decode")))
      )
    )
  }

/**
 * The worker side of the protocol: answers every message with
 * `{ ok: true, value }` or `{ ok: false, error }`.
 */
export const workerMain = <I, O>(run: (input: I) => O | PromiseLike<O>): void => {
  const port = parentPort
  if (port === null) throw new Error("WorkerTool.workerMain must run in a worker thread")
  port.on("message", async (input: I) => {
    try {
      port.postMessage({ ok: true, value: await run(input) })
    } catch (error) {
      port.postMessage({ ok: false, error: describeError(error) })
    }
  })
}
