/**
 * @tether/testing: a scripted model, a fake Anthropic Messages API server and
 * helpers to test the interruption semantics of agents.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as FakeAnthropic from "./FakeAnthropic.js"

/** @since 0.1.0 */
export * as ScriptedModel from "./ScriptedModel.js"

/** @since 0.1.0 */
export * as Interruptions from "./Interruptions.js"

/** @since 0.1.0 */
export * as SessionClient from "./SessionClient.js"
