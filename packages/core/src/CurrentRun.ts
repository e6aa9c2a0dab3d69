/**
 * The run the current code is part of. A run provides it to everything in its
 * tree (turns, tool calls, sub-agents, subtasks); `AgentRun.stage`,
 * `AgentRun.compensate` and `Subtask.spawn` need it. Tools never ask for it in
 * their requirements: `Tool.make` takes it out, since the run provides it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CurrentRun } from "@tether/core"
 *
 * // Inside a tool's handler: which run and session this call belongs to.
 * const where = Effect.map(CurrentRun.CurrentRun, (run) => `${run.runId} (${run.sessionId ?? "no session"})`)
 * ```
 *
 * @since 0.1.0
 */
import { Context } from "effect"

/** What code inside a run can read of it. @since 0.1.0 @category models */
export interface Service {
  readonly runId: string
  /** The session the run was started for, if any (`RunRegistry`, the HTTP routes). */
  readonly sessionId: string | undefined
  /** The agent at this point of the tree: its name, or `parent/child` for a sub-agent. */
  readonly agentPath: string
  /** The tool call this part of the tree runs in, if any. */
  readonly toolUseId: string | undefined
}

/** @since 0.1.0 @category tags */
export class CurrentRun extends Context.Tag("@tether/core/CurrentRun")<CurrentRun, Service>() {}
