/**
 * @tether/testing: a scripted model, a fake Anthropic Messages API server and
 * helpers to test the interruption semantics of agents.
 *
 * @since 0.1.0
 */
export * as FakeAnthropic from "./FakeAnthropic.js"
export * as ScriptedModel from "./ScriptedModel.js"
export * as Interruptions from "./Interruptions.js"
export * as SessionClient from "./SessionClient.js"
