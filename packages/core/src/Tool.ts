/**
 * A tool the model may call: a name, a description, Schema-typed input and
 * output, and an Effect handler. A run executes the handler as a child fiber
 * of the run, so interrupting the run interrupts it; a bad input from the
 * model (JSON that does not parse, a Schema mismatch, an unknown tool) goes
 * back to the model as an error tool result and never crashes the run, and so
 * does a failure of the handler (its message, see `describeError`). This
 * module only describes tools; `AgentRun` runs them.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Tool } from "@tether/core"
 *
 * const add = Tool.make({
 *   name: "add",
 *   description: "Adds two numbers",
 *   input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
 *   output: Schema.Number,
 *   handler: ({ a, b }) => Effect.succeed(a + b)
 * }).pipe(Tool.withTimeout("5 seconds"))
 * ```
 *
 * @since 0.1.0
 */
import { Duration, JSONSchema, Schema } from "effect"
import type { Effect } from "effect"
import { dual } from "effect/Function"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import type { CurrentRun } from "./CurrentRun.js"
import type { ToolDefinition } from "./LanguageModel.js"
import { describeError as describe } from "./internal/describe.js"

/** The model's input for a tool did not decode. @since 0.1.0 @category errors */
export class ToolInputError extends Schema.TaggedError<ToolInputError>()("ToolInputError", {
  tool: Schema.String,
  issue: Schema.String
}) {}

/** The model asked for a tool the agent does not have. @since 0.1.0 @category errors */
export class UnknownToolError extends Schema.TaggedError<UnknownToolError>()("UnknownToolError", {
  tool: Schema.String,
  available: Schema.Array(Schema.String)
}) {}

/** A tool ran past its timeout and was interrupted. @since 0.1.0 @category errors */
export class ToolTimeoutError extends Schema.TaggedError<ToolTimeoutError>()("ToolTimeoutError", {
  tool: Schema.String,
  millis: Schema.Number
}) {}

/** @since 0.1.0 @category symbols */
export const TypeId: unique symbol = Symbol.for("@tether/core/Tool")

/** @since 0.1.0 @category symbols */
export type TypeId = typeof TypeId

/**
 * A tool: what the model sees of it (`definition`) and its handler. `E` is what the handler may fail with (told to
 * the model as an error result), `R` what it needs besides the run itself (`CurrentRun`, which the run provides).
 *
 * @since 0.1.0
 * @category models
 */
export interface Tool<in out I, in out O, out E = never, out R = never> extends Pipeable {
  readonly [TypeId]: { readonly _E: (_: never) => E; readonly _R: (_: never) => R }
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, any>
  readonly output: Schema.Schema<O, any>
  readonly handler: (input: I) => Effect.Effect<O, E, R | CurrentRun>
  readonly timeout: Duration.Duration | undefined
  /** What the model sees: name, description and the JSON Schema of the input. */
  readonly definition: ToolDefinition
}

/** Any tool; `R` is what its handler needs. @since 0.1.0 @category models */
export interface Any<R = any> extends Tool<any, any, any, R> {}

/** The services the handlers of a list of tools need. @since 0.1.0 @category models */
export type Requirements<Tools extends ReadonlyArray<Any>> = RequirementsOf<Tools[number]>

type RequirementsOf<T> = T extends { readonly [TypeId]: { readonly _R: (_: never) => infer R } } ? R : never

/** What `make` takes. @since 0.1.0 @category models */
export interface Options<I, IE, O, OE, E, R> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly handler: (input: I) => Effect.Effect<O, E, R>
  /** A handler that runs longer is interrupted and the model told so (`ToolTimeoutError`). */
  readonly timeout?: Duration.DurationInput | undefined
}

const variance = { _E: (_: never) => _, _R: (_: never) => _ }

const ToolProto = {
  [TypeId]: variance,
  pipe() {
    return pipeArguments(this, arguments)
  }
}

/**
 * Makes a tool.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I, IE, O, OE, E = never, R = never>(
  options: Options<I, IE, O, OE, E, R>
): Tool<I, O, E, Exclude<R, CurrentRun>> =>
  Object.assign(Object.create(ToolProto), {
    name: options.name,
    description: options.description,
    input: options.input,
    output: options.output,
    handler: options.handler,
    timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout),
    definition: { name: options.name, description: options.description, inputSchema: JSONSchema.make(options.input) }
  })

/**
 * The same tool with a timeout: a call that runs longer is interrupted and the model told so.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withTimeout: {
  (timeout: Duration.DurationInput): <T extends Any>(self: T) => T
  <T extends Any>(self: T, timeout: Duration.DurationInput): T
} = dual(2, <T extends Any>(self: T, timeout: Duration.DurationInput): T =>
  Object.assign(Object.create(Object.getPrototypeOf(self)), self, { timeout: Duration.decode(timeout) })
)

/**
 * A readable one-line message for any failure a tool may produce (a tagged error, a `ParseError`, an `Error`, any
 * value): what the model is told when a tool fails. Never throws.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeError: (error: unknown) => string = describe
