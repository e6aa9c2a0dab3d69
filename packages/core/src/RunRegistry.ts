/**
 * Runs by session id, so a Stop request from another HTTP call cancels the
 * right run. Each run is a fiber of a `FiberMap` owned by the registry's layer;
 * closing the layer cancels every run with reason `Shutdown`. A second start
 * for a session whose run is still going either supersedes it (cancelled with
 * `Superseded`) or is refused, as the start asks. A session's latest run is
 * kept after it ended, for status and re-attaching, for `retainEnded` (default
 * 10 minutes); then it is forgotten, and its event history with it.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Option } from "effect"
 * import { Agent, CancelReason, RunRegistry } from "@tether/core"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const agent = Agent.make({ name: "planner" })
 * const program = Effect.gen(function* () {
 *   const registry = yield* RunRegistry.RunRegistry
 *   yield* registry.start("session-1", agent, "Plan my trip")
 *   // ... later, from another request:
 *   const outcome = yield* registry.cancel("session-1", new CancelReason.UserAbort())
 *   return Option.map(outcome, (ended) => ended._tag)
 * })
 *
 * const model = ScriptedModel.layer([ScriptedModel.text("Day one: the coast.", { chunks: 4, delay: "1 second" })])
 * const ended = await Effect.runPromise(program.pipe(Effect.provide(Layer.merge(RunRegistry.layer(), model))))
 * console.log(ended) // { _id: 'Option', _tag: 'Some', value: 'Cancelled' }
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, FiberMap, Layer, Option, Schedule, Schema } from "effect"
import type { Scope } from "effect"
import type { Agent } from "./Agent.js"
import type { AgentRun, RunInput, RunOptions } from "./AgentRun.js"
import * as CancelReason from "./CancelReason.js"
import type { LanguageModel } from "./LanguageModel.js"
import type { RunOutcome } from "./RunOutcome.js"
import { Once } from "./internal/once.js"
import * as internal from "./internal/run.js"
import * as internalShared from "./internal/shared.js"

/**
 * A start was refused because the session's run is still going.
 *
 * @since 0.1.0
 */
export class SessionBusyError extends Schema.TaggedError<SessionBusyError>()("SessionBusyError", {
  sessionId: Schema.String,
  runId: Schema.String
}) {}

/** @since 0.1.0 */
export interface StartOptions extends Omit<RunOptions, "sessionId"> {
  /** What to do when the session already has a run going. Default `"supersede"`. */
  readonly onConflict?: "supersede" | "refuse" | undefined
}

/** @since 0.1.0 */
export interface Service {
  /** Starts a run for the session and returns its handle at once. */
  readonly start: <R>(
    sessionId: string,
    agent: Agent<R>,
    input: RunInput,
    options?: StartOptions
  ) => Effect.Effect<AgentRun, SessionBusyError, LanguageModel | R>
  /** Cancels the session's run with `reason` and returns its outcome; `None` for an unknown session. */
  readonly cancel: (sessionId: string, reason: CancelReason.CancelReason) => Effect.Effect<Option.Option<RunOutcome>>
  /** The session's latest run, running or ended. */
  readonly get: (sessionId: string) => Effect.Effect<Option.Option<AgentRun>>
  /** The sessions whose run is still going. */
  readonly running: Effect.Effect<ReadonlyArray<string>>
  /**
   * Drops a session's run and its event history now (a running one is cancelled first, with `reason`), without
   * waiting for `retainEnded`.
   */
  readonly forget: (sessionId: string, reason?: CancelReason.CancelReason) => Effect.Effect<void>
  /** Cancels every running run with `reason` and waits for them. */
  readonly cancelAll: (reason: CancelReason.CancelReason) => Effect.Effect<void>
}

/** @since 0.1.0 */
export class RunRegistry extends Context.Tag("@tether/core/RunRegistry")<RunRegistry, Service>() {}

/** @since 0.1.0 */
export interface Options {
  /**
   * How long a session's latest run is kept once it has ended (for status, re-attaching and `cancel`, which then
   * returns its outcome), before it is forgotten with its event history: an ended run holds every event it streamed
   * (measured: ~15 KiB plus ~0.16 KiB per streamed text chunk). A sweep forgets it, every minute (every
   * `retainEnded` if that is shorter, but not more often than every second), so it goes between `retainEnded` and
   * one sweep more after its end. Default 10 minutes; `Duration.infinity` keeps it until the session starts another
   * run or is forgotten.
   */
  readonly retainEnded?: Duration.DurationInput | undefined
}

const isRunning = (run: AgentRun) => Effect.map(run.poll, Option.isNone)

/**
 * Makes a registry whose runs live as long as the current scope.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function* () {
    const fibers = yield* FiberMap.make<string>()
    const runs = new Map<string, AgentRun>()
    const lock = yield* Effect.makeSemaphore(1)
    const retainEnded = Duration.decode(options.retainEnded ?? Duration.minutes(10))
    const isRetainedForever = !Duration.isFinite(retainEnded)
    // When each session's latest run ended, by Effect's Clock (noted by an observer of the run's fiber). Keyed by
    // session, so that a run the session has replaced is not held here.
    const endedAt = new Map<string, number>()
    const dropSession = (sessionId: string) => {
      runs.delete(sessionId)
      endedAt.delete(sessionId)
    }
    if (!isRetainedForever) {
      // One sweeper for the registry, not a timer per run: thousands of live sessions would each hold a fiber.
      const retainMillis = Duration.toMillis(retainEnded)
      const sweep = Effect.map(Clock.currentTimeMillis, (now) => {
        // (An entry is only ever the session's latest run: `start` clears it, the observer checks.)
        for (const [sessionId, at] of endedAt) {
          if (now - at >= retainMillis) dropSession(sessionId)
        }
      })
      const every = Duration.max(Duration.min(retainEnded, Duration.minutes(1)), Duration.seconds(1))
      yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(every)))
    }

    const runningRuns = Effect.suspend(() => Effect.filter(Array.from(runs.values()), isRunning))
    // Every run is told first, synchronously, so they all stop at once; then one wait for all their outcomes (a wait
    // per run would wake this fiber once per run).
    const cancelAll = (reason: CancelReason.CancelReason) =>
      Effect.fiberIdWith((requester) =>
        Effect.suspend(() => {
          const cells: Array<Once<RunOutcome>> = []
          const others: Array<AgentRun> = []
          for (const run of Array.from(runs.values())) {
            const cell = internalShared.unsafeCancelBy(run, reason, requester)
            if (cell !== undefined) cells.push(cell)
            else others.push(run)
          }
          const all = Once.awaitAll(cells)
          return others.length === 0
            ? all
            : Effect.zipRight(
                all,
                Effect.forEach(others, (run) => run.outcome, { discard: true })
              )
        })
      )
    // Added after the FiberMap, so it runs first: every run learns why before its fiber is interrupted.
    yield* Effect.addFinalizer(() => cancelAll(new CancelReason.Shutdown()))

    const start: Service["start"] = (sessionId, agent, input, options) =>
      lock.withPermits(1)(
        Effect.gen(function* () {
          const previous = runs.get(sessionId)
          if (previous !== undefined && (yield* isRunning(previous))) {
            if (options?.onConflict === "refuse") {
              return yield* new SessionBusyError({ sessionId, runId: previous.id })
            }
            yield* previous.cancel(new CancelReason.Superseded())
          }
          const { run, program, attach } = yield* internal.make(agent, input, { ...options, sessionId })
          const fiber = yield* FiberMap.run(fibers, sessionId, program)
          yield* attach(fiber)
          runs.set(sessionId, run)
          endedAt.delete(sessionId)
          if (!isRetainedForever) {
            const clock = yield* Effect.clock
            fiber.addObserver(() => {
              if (runs.get(sessionId) === run) endedAt.set(sessionId, clock.unsafeCurrentTimeMillis())
            })
          }
          return run
        })
      )

    const service: Service = {
      start,
      cancel: (sessionId, reason) =>
        Effect.suspend(() => {
          const run = runs.get(sessionId)
          return run === undefined ? Effect.succeedNone : Effect.asSome(run.cancel(reason))
        }),
      get: (sessionId) => Effect.sync(() => Option.fromNullable(runs.get(sessionId))),
      forget: (sessionId, reason) =>
        lock.withPermits(1)(
          Effect.suspend(() => {
            const run = runs.get(sessionId)
            if (run === undefined) return Effect.void
            return run.cancel(reason ?? new CancelReason.UserAbort()).pipe(
              Effect.zipRight(
                Effect.sync(() => {
                  if (runs.get(sessionId) === run) dropSession(sessionId)
                })
              )
            )
          })
        ),
      running: Effect.map(runningRuns, (active) =>
        active.flatMap((run) => (run.sessionId === undefined ? [] : [run.sessionId]))
      ),
      cancelAll
    }
    return service
  })

/**
 * A registry for the lifetime of the layer; closing it cancels every run with `Shutdown`.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<RunRegistry> => Layer.scoped(RunRegistry, make(options))
