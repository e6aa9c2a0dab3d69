/**
 * The soak's agent and its tools, one of each kind a run must be able to stop:
 * a quick tool that stages a write, one that fails, one that never returns,
 * one whose Promise ignores its abort signal (its late write must be refused)
 * and one that runs a child process. Every write is keyed `<sessionId>/<call>`,
 * so the checks can tell whose writes landed.
 *
 * @example
 * ```ts
 * import * as Tools from "./Tools.js"
 *
 * const observed = Tools.makeObservations()
 * const kit = Tools.make(observed)
 * // kit.agent for SessionRoutes.router, kit.shell.running and kit.ignoreSignal.abandoned for the checks
 * ```
 *
 * @since 0.1.0
 */
import { Agent, AgentRun, PromiseTool, StagedWrites, Tool } from "@tether/core"
import { CommandTool } from "@tether/node"
import { Effect, Schema } from "effect"

/** The table the tools write to. @since 0.1.0 */
export const table = "soak"

/** What the tools saw, for the checks at the end of a round. @since 0.1.0 */
export interface Observations {
  /** Session id -> keys whose staging the run accepted. */
  readonly staged: Map<string, Set<string>>
  /** Late writes of abandoned Promises that were refused, as they must be. */
  lateWritesRefused: number
  /** Late writes that were accepted: each is a violation. */
  readonly lateWritesAccepted: Array<string>
  /** Writes refused while the tool was still running: each is a violation. */
  readonly refusedWhileRunning: Array<string>
}

/** @since 0.1.0 */
export const makeObservations = (): Observations => ({
  staged: new Map(),
  lateWritesRefused: 0,
  lateWritesAccepted: [],
  refusedWhileRunning: []
})

/** The session a write key belongs to. @since 0.1.0 */
export const sessionOf = (key: string): string => key.slice(0, key.indexOf("/"))

const recordStaged = (observed: Observations, key: string) => {
  const session = sessionOf(key)
  const keys = observed.staged.get(session) ?? new Set<string>()
  keys.add(key)
  observed.staged.set(session, keys)
}

const Input = Schema.Struct({ key: Schema.String })

const write = (key: string, by: string) => StagedWrites.upsert(table, key, { by, at: Date.now() })

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/** The tools and the agent that uses them. @since 0.1.0 */
export const make = (observed: Observations) => {
  const stage = (key: string, by: string) =>
    Effect.tap(AgentRun.stage(write(key, by)), () => Effect.sync(() => recordStaged(observed, key)))

  const lookup = Tool.make({
    name: "lookup",
    description: "Looks a key up and stages a note about it",
    input: Input,
    output: Schema.String,
    handler: ({ key }) => Effect.zipRight(Effect.sleep("10 millis"), Effect.as(stage(key, "lookup"), `found ${key}`))
  })

  const flaky = Tool.make({
    name: "flaky",
    description: "Always fails",
    input: Input,
    output: Schema.String,
    handler: ({ key }) => Effect.fail(new Error(`flaky failed on ${key}`))
  })

  const hang = Tool.make({
    name: "hang",
    description: "Stages a write, then never returns",
    input: Input,
    output: Schema.String,
    handler: ({ key }) => Effect.zipRight(stage(key, "hang"), Effect.never)
  })

  // Ignores its signal: stages early, keeps working 150 ms, then tries a second write. When the
  // run let go of it meanwhile (abandonAfter 30 ms), that write must be refused.
  const ignoreSignal = PromiseTool.make({
    name: "ignore_signal",
    description: "Works for a while without listening to cancellation",
    input: Input,
    output: Schema.String,
    abandonAfter: "30 millis",
    run: async ({ key }, signal, run) => {
      await run.stage(write(`${key}#early`, "ignore_signal"))
      recordStaged(observed, `${key}#early`)
      await sleep(150)
      const wasAborted = signal.aborted
      try {
        await run.stage(write(key, "ignore_signal"))
        if (wasAborted) observed.lateWritesAccepted.push(key)
        else recordStaged(observed, key)
      } catch {
        if (wasAborted) observed.lateWritesRefused++
        else observed.refusedWhileRunning.push(key)
      }
      return `worked on ${key}`
    }
  })

  const shell = CommandTool.make({
    name: "shell",
    description: "Runs a short child process",
    input: Input,
    output: Schema.String,
    command: () => ({ cmd: "sleep", args: ["0.1"] }),
    parse: () => "slept",
    killGrace: "200 millis"
  })

  const agent = Agent.make({
    name: "soak",
    system: "You are the soak test's agent.",
    tools: [lookup, flaky, hang, ignoreSignal, shell],
    maxTurns: 6,
    maxTokens: 512
  })
  return { agent, ignoreSignal, shell }
}
