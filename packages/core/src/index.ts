/**
 * @tether/core: agent runs as a supervised fiber tree. Interrupting a run
 * interrupts every turn, tool and subtask under it, aborts its model requests,
 * rolls back its staged writes and reports why.
 *
 * Definitions (what an agent, a tool, a message, an event is) import nothing of
 * the engine; `AgentRun`, `RunRegistry`, `Subtask` and `PromiseTool` run them.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Agent from "./Agent.js"

/** @since 0.1.0 */
export * as AgentError from "./AgentError.js"

/** @since 0.1.0 */
export * as AgentRun from "./AgentRun.js"

/** @since 0.1.0 */
export * as CancelReason from "./CancelReason.js"

/** @since 0.1.0 */
export * as Checkpoint from "./Checkpoint.js"

/** @since 0.1.0 */
export * as CurrentRun from "./CurrentRun.js"

/** @since 0.1.0 */
export * as LanguageModel from "./LanguageModel.js"

/** @since 0.1.0 */
export * as Message from "./Message.js"

/** @since 0.1.0 */
export * as ModelError from "./ModelError.js"

/** @since 0.1.0 */
export * as PromiseTool from "./PromiseTool.js"

/** @since 0.1.0 */
export * as RunEvent from "./RunEvent.js"

/** @since 0.1.0 */
export * as RunOutcome from "./RunOutcome.js"

/** @since 0.1.0 */
export * as RunRegistry from "./RunRegistry.js"

/** @since 0.1.0 */
export * as SessionStore from "./SessionStore.js"

/** @since 0.1.0 */
export * as StagedWrites from "./StagedWrites.js"

/** @since 0.1.0 */
export * as Subtask from "./Subtask.js"

/** @since 0.1.0 */
export * as TokenBudget from "./TokenBudget.js"

/** @since 0.1.0 */
export * as Tool from "./Tool.js"
