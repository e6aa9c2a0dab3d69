/**
 * Child processes for `CommandTool`, straight on `node:child_process`.
 *
 * Every command leads its own process group (`detached: true` makes the child
 * call `setsid`), so what it starts (a shell's children, a build's compilers)
 * can be signalled at once with `process.kill(-pid)`. Whatever way the call
 * ends, the group gets SIGKILL once the leader exited, and the leader is
 * reaped before the call returns: no process of the group keeps running and
 * the tool leaves no zombie of its own. (Processes that left the group with
 * `setsid`, daemons, are beyond reach by design.)
 */
import { spawn, type ChildProcess } from "node:child_process"
import { Duration, Effect, ParseResult, Schema } from "effect"
import { Tool } from "@tether/core"
import type { Spec } from "../CommandTool.js"

const { describeError } = Tool

/** The command of a `CommandTool` could not start, exited non-zero or printed unexpected output. */
export class CommandToolError extends Schema.TaggedError<CommandToolError>()("CommandToolError", {
  tool: Schema.String,
  message: Schema.String,
  exitCode: Schema.NullOr(Schema.Number),
  /** The end of what the command wrote to stderr. */
  stderr: Schema.String
}) {}

export interface CommandOutput {
  readonly stdout: string
  readonly stderr: string
}

/** The pids of a tool's commands that are still running, for stats and tests. */
export type RunningSet = Set<number>

const maxOutputBytes = 16 * 1024 * 1024

/** Signals the whole group led by `pid`; a group that is already gone is fine. */
const signalGroup = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: every process of the group has exited.
  }
}

/** Waits for `promise`, at most `millis`. */
const within = (promise: Promise<unknown>, millis: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, millis)
    void promise.then(() => {
      clearTimeout(timer)
      resolve()
    })
  })

const tail = (text: string) => (text.length > 2000 ? `...${text.slice(-2000)}` : text)

/**
 * Runs one command to its end. Interruption sends SIGTERM to the group, then
 * SIGKILL when the leader exited or after `killGrace`, and waits for the
 * leader's exit.
 */
export const run = (
  tool: string,
  spec: Spec,
  killGrace: Duration.Duration,
  running: RunningSet
): Effect.Effect<CommandOutput, CommandToolError> =>
  Effect.async<CommandOutput, CommandToolError>((resume) => {
    const fail = (message: string, fields: { exitCode?: number | null; stderr?: string } = {}) =>
      Effect.fail(
        new CommandToolError({ tool, message, exitCode: fields.exitCode ?? null, stderr: tail(fields.stderr ?? "") })
      )
    let child: ChildProcess
    try {
      child = spawn(spec.cmd, Array.from(spec.args ?? []), {
        cwd: spec.cwd,
        env: spec.env === undefined ? process.env : { ...process.env, ...spec.env },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
    } catch (error) {
      resume(fail(`${spec.cmd} could not be started: ${describeError(error)}`))
      return
    }
    const pid = child.pid
    let isDone = false
    const stdout: Array<Buffer> = []
    const stderr: Array<Buffer> = []
    let bytes = 0
    let isTruncated = false
    const collect = (into: Array<Buffer>) => (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > maxOutputBytes) isTruncated = true
      else into.push(chunk)
    }
    child.stdout?.on("data", collect(stdout))
    child.stderr?.on("data", collect(stderr))
    const grace = Duration.toMillis(killGrace)
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, signal) => {
        if (pid !== undefined) {
          running.delete(pid)
          signalGroup(pid, "SIGKILL")
        }
        resolve({ code, signal })
      })
    })
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()))
    // The output is complete once every holder of the pipes is gone; a process that left the group may
    // keep them open, so after the leader exited this waits at most `killGrace`.
    const finished = exited.then(async (status) => {
      await within(closed, grace)
      child.stdout?.destroy()
      child.stderr?.destroy()
      return status
    })
    child.once("error", (error) => {
      if (pid !== undefined) signalGroup(pid, "SIGKILL")
      if (isDone) return
      isDone = true
      if (pid !== undefined) running.delete(pid)
      resume(fail(`${spec.cmd} could not be started: ${describeError(error)}`))
    })
    if (pid === undefined) return
    running.add(pid)
    void finished.then(({ code, signal }) => {
      if (isDone) return
      isDone = true
      const out = Buffer.concat(stdout).toString("utf8")
      const err = Buffer.concat(stderr).toString("utf8")
      if (isTruncated) resume(fail(`${spec.cmd} wrote more than ${maxOutputBytes} bytes`, { stderr: err }))
      else if (code === 0) resume(Effect.succeed({ stdout: out, stderr: err }))
      else {
        const why = signal === null ? `exited with code ${code}` : `was killed by ${signal}`
        resume(fail(`${spec.cmd} ${why}`, { exitCode: code, stderr: err }))
      }
    })
    return Effect.promise(async () => {
      if (isDone) return
      isDone = true
      signalGroup(pid, "SIGTERM")
      await within(exited, grace)
      signalGroup(pid, "SIGKILL")
      await finished
    })
  })

/**
 * The handler of a `CommandTool`: runs the command of the input, then decodes
 * its stdout (after `parse`, when given) with the output Schema.
 */
export const handler =
  <I, O, OE>(
    tool: string,
    options: {
      readonly command: (input: I) => Spec
      readonly output: Schema.Schema<O, OE>
      readonly parse?: ((stdout: string) => O) | undefined
      readonly killGrace: Duration.Duration
      readonly running: RunningSet
    }
  ) =>
  (input: I): Effect.Effect<O, CommandToolError> =>
    Effect.flatMap(
      Effect.try({
        try: () => options.command(input),
        catch: (error) =>
          new CommandToolError({ tool, message: `no command: ${describeError(error)}`, exitCode: null, stderr: "" })
      }),
      (spec) =>
        Effect.flatMap(run(tool, spec, options.killGrace, options.running), ({ stdout, stderr }) => {
          const unexpected = (message: string) =>
            new CommandToolError({ tool, message: `${spec.cmd}: ${message}`, exitCode: 0, stderr: tail(stderr) })
          const { parse } = options
          const parsed =
            parse === undefined
              ? Schema.decodeUnknown(options.output)(stdout)
              : Effect.flatMap(
                  Effect.try({ try: () => parse(stdout), catch: (error) => unexpected(describeError(error)) }),
                  Schema.validate(options.output)
                )
          return Effect.catchIf(parsed, ParseResult.isParseError, (error) =>
            Effect.fail(unexpected(`unexpected output: ${ParseResult.TreeFormatter.formatErrorSync(error)}`))
          )
        })
    )

/** The pids of the commands in `running`. */
export const runningPids = (running: RunningSet): Effect.Effect<ReadonlyArray<number>> =>
  Effect.sync(() => Array.from(running))
