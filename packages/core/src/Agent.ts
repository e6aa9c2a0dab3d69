/**
 * An agent: a system prompt, tools and limits. `Agent.run` runs it as a tree
 * of fibers in one scope: each turn streams from the `LanguageModel`, tool
 * calls of a turn run as concurrent child fibers, subtasks fork into the run's
 * scope. Interrupting the run interrupts all of it, aborts model requests,
 * rolls back staged writes and runs compensations. Run inside another run (in
 * a tool or a subtask), an agent is a sub-agent: it shares the parent's token
 * budget, staged writes and events, and stops with the parent.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Agent, Tool } from "@tether/core"
 *
 * const weather = Tool.make("weather", {
 *   description: "Current weather for a city",
 *   input: Schema.Struct({ city: Schema.String }),
 *   output: Schema.String,
 *   handler: ({ city }) => Effect.succeed(`Sunny in ${city}`)
 * })
 *
 * const assistant = Agent.make({ name: "assistant", system: "Be brief.", tools: [weather], tokenBudget: 20_000 })
 *
 * // Needs a LanguageModel layer, e.g. AnthropicModel.layerConfig from @tether/anthropic.
 * const answer = Agent.run(assistant, "Weather in Oslo?").pipe(Effect.map((result) => result.text))
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Option, Runtime } from "effect"
import type { AgentError } from "./AgentError.js"
import type { RunOptions, RunOutcome } from "./AgentRun.js"
import * as CancelReason from "./CancelReason.js"
import type { LanguageModel } from "./LanguageModel.js"
import type { Message } from "./Message.js"
import type * as Tool from "./Tool.js"
import * as AbortSignals from "./internal/abortSignal.js"
import { CurrentRun, emitter, type RunContext } from "./internal/context.js"
import { runLoop } from "./internal/loop.js"
import * as internal from "./internal/run.js"
import * as Transcript from "./internal/transcript.js"

/** @since 0.1.0 */
export interface Agent<R> {
  readonly name: string
  readonly system: string | undefined
  readonly tools: ReadonlyArray<Tool.Any<R>>
  /** Most turns before the run fails with `MaxTurnsError`. */
  readonly maxTurns: number
  /** `max_tokens` of each turn (clamped to what the budget has left). */
  readonly maxTokens: number
  /** Most tool calls of one turn that run at once. */
  readonly toolConcurrency: number
  /** Token ceiling of a run tree started from this agent, unless the run's options say otherwise. */
  readonly tokenBudget: number | undefined
}

/** What a run starts from: a user message, or a history and a message. @since 0.1.0 */
export type RunInput =
  string | { readonly history?: ReadonlyArray<Message> | undefined; readonly message: string | Message }

/** What a successful run returns: the last text and the whole transcript, ready for the next message. @since 0.1.0 */
export interface RunResult {
  readonly text: string
  readonly transcript: ReadonlyArray<Message>
}

/** @since 0.1.0 */
export const make = <const Tools extends ReadonlyArray<Tool.Any> = readonly []>(options: {
  readonly name: string
  readonly system?: string | undefined
  readonly tools?: Tools | undefined
  readonly maxTurns?: number | undefined
  readonly maxTokens?: number | undefined
  readonly toolConcurrency?: number | undefined
  readonly tokenBudget?: number | undefined
}): Agent<Tool.Requirements<Tools>> => ({
  name: options.name,
  system: options.system,
  tools: (options.tools ?? []) as ReadonlyArray<Tool.Any<Tool.Requirements<Tools>>>,
  maxTurns: options.maxTurns ?? 10,
  maxTokens: options.maxTokens ?? 1024,
  toolConcurrency: options.toolConcurrency ?? 4,
  tokenBudget: options.tokenBudget
})

const runNested = <R>(parent: RunContext, agent: Agent<R>, input: RunInput) =>
  Effect.gen(function* () {
    const agentPath = `${parent.agentPath}/${agent.name}`
    const publish = parent.publishAs(agentPath)
    const ctx: RunContext = { ...parent, agentPath, publish, emit: emitter(publish) }
    return yield* runLoop(agent, ctx, Transcript.initial(internal.inputMessages(input))).pipe(
      Effect.provideService(CurrentRun, ctx)
    )
  })

/**
 * Runs an agent to its end on the current fiber. Interrupting the caller cancels
 * the run (a client disconnect of @effect/platform is recorded as
 * `ClientDisconnected`); the exit is then `Interrupted`. Inside another run it
 * runs as a sub-agent of that run.
 *
 * @since 0.1.0
 */
export const run = <R>(
  agent: Agent<R>,
  input: RunInput,
  options?: RunOptions
): Effect.Effect<RunResult, AgentError, LanguageModel | Exclude<R, CurrentRun>> =>
  Effect.flatMap(Effect.serviceOption(CurrentRun), (parent) =>
    Option.isSome(parent)
      ? runNested(parent.value, agent, input)
      : Effect.flatMap(internal.make(agent, input, options ?? {}), ({ program, attach }) =>
          Effect.zipRight(
            Effect.withFiberRuntime<void>((fiber) => attach(fiber as never)),
            program
          )
        )
  )

/**
 * Runs an agent from Promise code. Aborting `signal` cancels the whole tree
 * (with the signal's reason when it is a `CancelReason`, else `UserAbort`); the
 * Promise resolves with the outcome either way and never leaves a listener on
 * the signal.
 *
 * @example
 * ```ts
 * import { ManagedRuntime } from "effect"
 * import { Agent } from "@tether/core"
 *
 * declare const agent: Agent.Agent<never>
 * declare const runtime: ManagedRuntime.ManagedRuntime<any, never>
 * const controller = new AbortController()
 * const outcome = await Agent.runPromise(agent, "hi", { runtime: await runtime.runtime(), signal: controller.signal })
 * ```
 *
 * @since 0.1.0
 */
export const runPromise = async <R>(
  agent: Agent<R>,
  input: RunInput,
  options: RunOptions & {
    readonly runtime: Runtime.Runtime<LanguageModel | Exclude<R, CurrentRun>>
    readonly signal?: AbortSignal | undefined
  }
): Promise<RunOutcome> => {
  const { run, program, attach } = await Runtime.runPromise(options.runtime)(internal.make(agent, input, options))
  const fiber = Runtime.runFork(options.runtime)(program)
  Runtime.runSync(options.runtime)(attach(fiber))
  const signal = options.signal
  // Synchronous all the way to the abort of the run's model requests: no Schema decode of a reason that is already
  // one, no fiber started.
  const onAbort = () => {
    const given: unknown = signal?.reason
    const reason = CancelReason.isCancelReason(given)
      ? given
      : Option.getOrElse(
          CancelReason.decodeOption(given),
          (): CancelReason.CancelReason => new CancelReason.UserAbort()
        )
    run.unsafeRequestCancel(reason)
  }
  const release = signal === undefined ? undefined : AbortSignals.onAbort(signal, onAbort)
  try {
    return await Runtime.runPromise(options.runtime)(run.outcome)
  } finally {
    release?.()
  }
}

/** `Agent.runPromise` under the name non-Effect users look for. @since 0.1.0 */
export const runAgent = runPromise
