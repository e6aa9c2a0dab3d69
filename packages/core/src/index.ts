/**
 * @tether/core: agent runs as a supervised fiber tree. Interrupting a run
 * interrupts every turn, tool and subtask under it, aborts its model requests,
 * rolls back its staged writes and reports why.
 *
 * @since 0.1.0
 */
export * as Agent from "./Agent.js"
export * as AgentError from "./AgentError.js"
export * as AgentRun from "./AgentRun.js"
export * as CancelReason from "./CancelReason.js"
export * as Checkpoint from "./Checkpoint.js"
export * as LanguageModel from "./LanguageModel.js"
export * as Message from "./Message.js"
export * as ModelError from "./ModelError.js"
export * as RunEvent from "./RunEvent.js"
export * as RunRegistry from "./RunRegistry.js"
export * as SessionStore from "./SessionStore.js"
export * as StagedWrites from "./StagedWrites.js"
export * as Subtask from "./Subtask.js"
export * as TokenBudget from "./TokenBudget.js"
export * as Tool from "./Tool.js"
