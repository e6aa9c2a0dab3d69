/**
 * Which model answers: the real Anthropic API when `ANTHROPIC_API_KEY` is set,
 * otherwise the offline fake. The fake is `FakeAnthropic`, a real HTTP server
 * on 127.0.0.1 speaking the Messages API's SSE, and the real SDK provider is
 * pointed at it, so even the offline demo aborts real sockets on Stop.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import * as Model from "./Model.js"
 *
 * const model = Model.layerFromEnv // LanguageModel and ModelInfo
 * ```
 *
 * @since 0.1.0
 */
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import type { ConfigError } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import type { LanguageModel } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import * as OfflineScript from "./OfflineScript.js"

/** What the page shows about the model. @since 0.1.0 */
export interface Info {
  readonly mode: "anthropic" | "offline"
  readonly label: string
}

/** @since 0.1.0 */
export class ModelInfo extends Context.Tag("@tether/example-chat-server/ModelInfo")<ModelInfo, Info>() {}

/** A bad setting, or no `ANTHROPIC_API_KEY` (for `layerAnthropic`). */
type ConfigFailure = ConfigError.ConfigError | AnthropicModel.MissingApiKeyError

/** The real API, configured from the environment (`AnthropicModel.config`). @since 0.1.0 */
export const layerAnthropic: Layer.Layer<LanguageModel.LanguageModel | ModelInfo, ConfigFailure> = Layer.merge(
  AnthropicModel.layerConfig,
  Layer.effect(
    ModelInfo,
    Effect.map(
      Config.string("ANTHROPIC_MODEL").pipe(Config.withDefault(AnthropicModel.defaultModel)),
      (model): Info => ({ mode: "anthropic", label: `Anthropic API (${model})` })
    )
  )
)

/**
 * The offline fake: `FakeAnthropic` on a free port of 127.0.0.1 playing
 * `OfflineScript`, with `AnthropicModel` pointed at it. Also provides the fake
 * itself, so tests can watch its connections. It keeps the records of its
 * latest 100 requests only: a server that runs for days does not hold every
 * request it ever answered.
 *
 * @since 0.1.0
 */
export const layerOffline = (
  options: OfflineScript.Options = {}
): Layer.Layer<LanguageModel.LanguageModel | ModelInfo | FakeAnthropic.FakeAnthropic> =>
  Layer.unwrapScoped(
    Effect.map(FakeAnthropic.make(OfflineScript.make(options), { keepRequests: 100 }), (fake) =>
      Layer.mergeAll(
        AnthropicModel.layer({ apiKey: "offline-fake", baseURL: fake.url, maxRetries: 0 }),
        Layer.succeed(ModelInfo, { mode: "offline", label: "offline fake" }),
        Layer.succeed(FakeAnthropic.FakeAnthropic, fake)
      )
    )
  )

/** The real API when `ANTHROPIC_API_KEY` is set and not empty, else the offline fake. @since 0.1.0 */
export const layerFromEnv: Layer.Layer<LanguageModel.LanguageModel | ModelInfo, ConfigFailure> = Layer.unwrapEffect(
  Effect.map(Config.option(Config.redacted("ANTHROPIC_API_KEY")), (key) =>
    Option.isSome(key) && Redacted.value(key.value).trim() !== "" ? layerAnthropic : layerOffline()
  )
)
