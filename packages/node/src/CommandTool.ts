/**
 * Tools that run a child process. The command leads its own process group;
 * interrupting the tool (its run cancelled, its timeout reached) sends SIGTERM
 * to the whole group, SIGKILL once the command exited or after `killGrace`
 * (default 1 second), and waits for its exit. When the command exits by
 * itself, what it left running in its group is killed too. Its stdout, through
 * `parse` when given, is decoded with `output`. (POSIX only: process groups.)
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { CommandTool } from "@tether/node"
 *
 * const grep = CommandTool.make({
 *   name: "grep",
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
import { Duration } from "effect"
import type { Effect, Schema } from "effect"
import { Tool } from "@tether/core"
import * as internal from "./internal/command.js"

/**
 * The command of a `CommandTool` could not start, exited non-zero or printed unexpected output.
 *
 * @since 0.1.0
 * @category errors
 */
export const CommandToolError = internal.CommandToolError
/** @since 0.1.0 @category errors */
export type CommandToolError = internal.CommandToolError

/** What a `CommandTool` runs. `env` is added to this process's environment. @since 0.1.0 @category models */
export interface Spec {
  readonly cmd: string
  readonly args?: ReadonlyArray<string> | undefined
  readonly cwd?: string | undefined
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

/** @since 0.1.0 @category models */
export interface CommandTool<in out I, in out O> extends Tool.Tool<I, O, CommandToolError> {
  readonly handler: (input: I) => Effect.Effect<O, CommandToolError>
  /** The pids of this tool's commands still running (each leads its own process group). */
  readonly running: Effect.Effect<ReadonlyArray<number>>
}

/** @since 0.1.0 @category models */
export interface Options<I, IE, O, OE> {
  readonly name: string
  readonly description: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly command: (input: I) => Spec
  /** Turns stdout into the output (decoded with `output` when absent). */
  readonly parse?: ((stdout: string) => O) | undefined
  readonly timeout?: Duration.DurationInput | undefined
  /** How long the group has after SIGTERM before SIGKILL. Default 1 second. */
  readonly killGrace?: Duration.DurationInput | undefined
}

/**
 * Makes a tool that runs `command(input)` as a child process.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I, IE, O, OE>(options: Options<I, IE, O, OE>): CommandTool<I, O> => {
  const running: internal.RunningSet = new Set()
  const handler = internal.handler(options.name, {
    command: options.command,
    output: options.output,
    parse: options.parse,
    killGrace: Duration.decode(options.killGrace ?? "1 second"),
    running
  })
  return Object.assign(
    Tool.make({
      name: options.name,
      description: options.description,
      input: options.input,
      output: options.output,
      timeout: options.timeout,
      handler
    }),
    { handler, running: internal.runningPids(running) }
  )
}
