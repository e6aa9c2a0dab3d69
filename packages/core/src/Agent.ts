/**
 * An agent: a name, a system prompt, tools and limits. This module only
 * describes agents; `AgentRun` runs them (`AgentRun.run`, `AgentRun.start`,
 * `AgentRun.runPromise`) as a tree of fibers in one scope, and
 * `RunRegistry` runs them by session.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Agent, Tool } from "@tether/core"
 *
 * const weather = Tool.make({
 *   name: "weather",
 *   description: "Current weather for a city",
 *   input: Schema.Struct({ city: Schema.String }),
 *   output: Schema.String,
 *   handler: ({ city }) => Effect.succeed(`Sunny in ${city}`)
 * })
 *
 * const assistant = Agent.make({ name: "assistant", system: "Be brief.", tools: [weather] }).pipe(
 *   Agent.withLimits({ tokenBudget: 20_000, maxTurns: 4 })
 * )
 * ```
 *
 * @since 0.1.0
 */
import { dual } from "effect/Function"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import type * as Tool from "./Tool.js"

/** @since 0.1.0 @category models */
export interface Agent<out R> extends Pipeable, Limits {
  readonly name: string
  readonly system: string | undefined
  readonly tools: ReadonlyArray<Tool.Any<R>>
}

/** What bounds a run of an agent. @since 0.1.0 @category models */
export interface Limits {
  /** Most turns before the run fails with `MaxTurnsError`. Default 10. */
  readonly maxTurns: number
  /** `max_tokens` of each turn (clamped to what the budget has left). Default 1024. */
  readonly maxTokens: number
  /** Most tool calls of one turn that run at once. Default 4. */
  readonly toolConcurrency: number
  /** Token ceiling of a run tree started from this agent, unless the run's options say otherwise. */
  readonly tokenBudget: number | undefined
}

/** What `make` takes. @since 0.1.0 @category models */
export interface Options<Tools extends ReadonlyArray<Tool.Any>> extends Partial<Limits> {
  readonly name: string
  readonly system?: string | undefined
  readonly tools?: Tools | undefined
}

const AgentProto = {
  pipe() {
    return pipeArguments(this, arguments)
  }
}

const build = <R>(fields: Omit<Agent<R>, "pipe">): Agent<R> => Object.assign(Object.create(AgentProto), fields)

/**
 * Makes an agent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const Tools extends ReadonlyArray<Tool.Any> = readonly []>(
  options: Options<Tools>
): Agent<Tool.Requirements<Tools>> =>
  build({
    name: options.name,
    system: options.system,
    tools: (options.tools ?? []) as ReadonlyArray<Tool.Any<Tool.Requirements<Tools>>>,
    maxTurns: options.maxTurns ?? 10,
    maxTokens: options.maxTokens ?? 1024,
    toolConcurrency: options.toolConcurrency ?? 4,
    tokenBudget: options.tokenBudget
  })

/**
 * The same agent with more tools.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withTools: {
  <const Tools extends ReadonlyArray<Tool.Any>>(
    tools: Tools
  ): <R>(self: Agent<R>) => Agent<R | Tool.Requirements<Tools>>
  <R, const Tools extends ReadonlyArray<Tool.Any>>(self: Agent<R>, tools: Tools): Agent<R | Tool.Requirements<Tools>>
} = dual(
  2,
  <R, const Tools extends ReadonlyArray<Tool.Any>>(self: Agent<R>, tools: Tools): Agent<R | Tool.Requirements<Tools>> =>
    build({ ...self, tools: [...self.tools, ...tools] })
)

/**
 * The same agent with another system prompt.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withSystem: {
  (system: string): <R>(self: Agent<R>) => Agent<R>
  <R>(self: Agent<R>, system: string): Agent<R>
} = dual(2, <R>(self: Agent<R>, system: string): Agent<R> => build({ ...self, system }))

/**
 * The same agent with some of its limits changed.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withLimits: {
  (limits: Partial<Limits>): <R>(self: Agent<R>) => Agent<R>
  <R>(self: Agent<R>, limits: Partial<Limits>): Agent<R>
} = dual(2, <R>(self: Agent<R>, limits: Partial<Limits>): Agent<R> => build({ ...self, ...limits }))
