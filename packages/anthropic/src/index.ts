/**
 * @tether/anthropic: Tether's `LanguageModel` on the Anthropic Messages API,
 * with signal-first abort, typed errors and interruptible retries.
 *
 * @since 0.1.0
 */
export * as AnthropicModel from "./AnthropicModel.js"
