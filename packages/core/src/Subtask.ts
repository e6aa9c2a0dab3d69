/**
 * Work a run forks off: a sub-agent, background research, a long write. A
 * subtask lives in the run's scope, not in the fiber that spawned it: it may
 * outlive the tool that started it, but never the run. Cancelling the run
 * interrupts it (and awaits it) before the run's writes roll back; a run that
 * succeeds waits for its subtasks before it commits, and fails if one that
 * nobody awaited failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Agent, AgentRun, Subtask } from "@tether/core"
 *
 * const researcher = Agent.make({ name: "researcher", system: "Summarise what is known." })
 * const handler = (topic: string) =>
 *   Effect.gen(function* () {
 *     const task = yield* Subtask.spawn("research", AgentRun.run(researcher, `Research ${topic}`))
 *     const result = yield* Subtask.join(task)
 *     return result.text
 *   })
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Fiber } from "effect"
import type { CurrentRun } from "./CurrentRun.js"
import * as RunEvent from "./RunEvent.js"
import { provide, withContext, type RunContext, type SubtaskEntry } from "./internal/context.js"
import { withSpan } from "./internal/tracing.js"
import { make as makeEvent } from "./internal/event.js"

/** @since 0.1.0 */
export interface Subtask<A, E> {
  readonly id: string
  readonly name: string
  readonly fiber: Fiber.RuntimeFiber<A, E>
  /** @internal */
  readonly entry: SubtaskEntry
}

/**
 * Forks `effect` into the current run's scope and returns at once.
 *
 * @since 0.1.0
 */
export const spawn = <A, E, R>(
  name: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<Subtask<A, E>, never, R | CurrentRun> =>
  withContext(
    (ctx) => spawnIn(ctx, name, effect),
    () => Effect.dieMessage(`Subtask.spawn("${name}") must run inside an agent run`)
  )

const spawnIn = <A, E, R>(ctx: RunContext, name: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const id = ctx.nextId("subtask")
    yield* ctx.emit((c) => makeEvent(RunEvent.SubtaskStarted, c, { subtaskId: id, name }))
    const tracked = effect.pipe(
      Effect.onExit((exit) =>
        ctx.emit((c) =>
          makeEvent(RunEvent.SubtaskEnded, c, {
            subtaskId: id,
            name,
            outcome: Exit.isSuccess(exit) ? "succeeded" : Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed"
          })
        )
      ),
      withSpan(`Subtask.${name}`, { subtaskId: id })
    )
    // A subtask belongs to the run, not to the tool call that spawned it: it stages where the run stages.
    const runCtx = { ...ctx, stageWrite: ctx.runStageWrite, toolUseId: undefined }
    const fiber = yield* Effect.forkIn(provide(tracked, runCtx), ctx.childScope)
    const entry: SubtaskEntry = { name, fiber: fiber as Fiber.RuntimeFiber<unknown, unknown>, observed: false }
    ctx.subtasks.push(entry)
    return { id, name, fiber, entry }
  })

/**
 * Waits for a subtask and returns its result.
 *
 * @since 0.1.0
 */
export const join = <A, E>(subtask: Subtask<A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    subtask.entry.observed = true
    return Fiber.join(subtask.fiber)
  })

/**
 * Waits for a subtask and returns its exit.
 *
 * @since 0.1.0
 */
const await_ = <A, E>(subtask: Subtask<A, E>): Effect.Effect<Exit.Exit<A, E>> =>
  Effect.suspend(() => {
    subtask.entry.observed = true
    return Fiber.await(subtask.fiber)
  })

export {
  /**
   * Waits for a subtask and returns its exit.
   *
   * @since 0.1.0
   */
  await_ as await
}

/**
 * Interrupts a subtask and waits for it to stop.
 *
 * @since 0.1.0
 */
export const interrupt = <A, E>(subtask: Subtask<A, E>): Effect.Effect<void> => Fiber.interrupt(subtask.fiber)
