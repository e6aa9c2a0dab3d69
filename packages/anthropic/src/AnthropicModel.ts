/**
 * A `LanguageModel` on the Anthropic Messages API (@anthropic-ai/sdk). Each
 * turn is one streamed request mapped to `ModelEvent`s. Interrupting the
 * turn aborts the HTTP request first: the socket closes at once,
 * not at the next token. Failures are typed `ModelError`s; retryable ones are
 * retried with backoff (honouring `retry-after`, capped) only while the turn
 * has emitted nothing, and the wait between attempts is interruptible.
 *
 * A faulty server cannot hang a turn or swell the heap: a response that goes quiet (`streamIdleTimeout`, pings do
 * not count) is aborted with `StreamIdleTimeoutError`, and one whose SSE line or event passes its cap
 * (`maxLineBytes`, `maxEventBytes`) is aborted with `MalformedResponseError` at the cap, before the rest is read.
 *
 * The transport: on Node the SDK sends its requests through a lean `fetch` of this package on `node:http` /
 * `node:https` (keep-alive agents; an abort destroys the request, so the socket closes at once), which holds about
 * half the heap per live stream of Node's own fetch (undici). Bun, Deno, workerd and browsers keep
 * `globalThis.fetch` (package.json's `node` condition picks the transport). A `fetch` in the options wins over both.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LanguageModel, Message } from "@tether/core"
 * import { AnthropicModel } from "@tether/anthropic"
 *
 * const program = Effect.gen(function* () {
 *   return yield* LanguageModel.streamTurn({ messages: [Message.user("Hello")], tools: [], maxTokens: 512 }).pipe(
 *     Stream.runCollect
 *   )
 * }).pipe(Effect.provide(AnthropicModel.layerConfig))
 * ```
 *
 * @since 0.1.0
 */
import Anthropic from "@anthropic-ai/sdk"
import { LanguageModel, ModelError } from "@tether/core"
import { Config, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { ConfigError, RateLimiter } from "effect"
import { defaultFetch } from "#defaultFetch"
import { toParams } from "./internal/request.js"
import * as IdleSweep from "./internal/idle.js"
import { retryPolicy, runTurn } from "./internal/turn.js"

/**
 * The model used when none is configured.
 *
 * @since 0.1.0
 */
export const defaultModel = "claude-sonnet-4-6"

/** @since 0.1.0 */
export interface Options {
  readonly apiKey: Redacted.Redacted<string> | string
  /** Default `defaultModel`. */
  readonly model?: string | undefined
  /** Default the SDK's (`ANTHROPIC_BASE_URL` or https://api.anthropic.com). */
  readonly baseURL?: string | undefined
  /** Retries of a turn that failed before its first event with a retryable error. Default 3. */
  readonly maxRetries?: number | undefined
  /** First backoff delay, doubled each retry, with jitter. Default 500 millis. */
  readonly retryBaseDelay?: Duration.DurationInput | undefined
  /** The longest wait between attempts, whatever `retry-after` asks. Default 30 seconds. */
  readonly maxRetryDelay?: Duration.DurationInput | undefined
  /** How long to wait for response headers (the streamed body has `streamIdleTimeout`). Default 2 minutes. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /**
   * How long a streamed response may send no event (a `ping` does not count) after its headers or its latest
   * event: then the request is aborted and the attempt fails with `StreamIdleTimeoutError`. Like any retryable
   * error it is retried only if the turn had emitted nothing yet (a response quiet from its headers on); a
   * response that goes quiet after its first event fails the turn, and the run with it. `Duration.infinity` turns
   * it off. Default 1 minute.
   */
  readonly streamIdleTimeout?: Duration.DurationInput | undefined
  /**
   * The longest SSE line a response may send, in bytes; past it the request is aborted and the attempt fails
   * with `MalformedResponseError`, without reading or buffering the rest. Default 1 MiB.
   */
  readonly maxLineBytes?: number | undefined
  /** The largest SSE event (its lines up to the blank line), in bytes, likewise. Default 4 MiB. */
  readonly maxEventBytes?: number | undefined
  /** Every request (each attempt) first takes a permit; the wait is interruptible. */
  readonly rateLimiter?: RateLimiter.RateLimiter | undefined
  /**
   * A custom `fetch`, e.g. one that counts or pins sockets (the SSE caps apply to the body as it is read). Default: on
   * Node, this package's `fetch` on `node:http` / `node:https`; elsewhere the SDK's (`globalThis.fetch`). Pass
   * `globalThis.fetch` for Node's fetch (undici).
   */
  readonly fetch?: ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) | undefined
  /** The SDK's own log level. Default "off": its failures come back as typed errors. */
  readonly logLevel?: "off" | "error" | "warn" | "info" | "debug" | undefined
  /**
   * Extended thinking: each turn may think for up to `budgetTokens` (at least 1024), capped at the turn's
   * `maxTokens` less one (thinking is part of a turn's output, and a run near its token ceiling gets a smaller
   * `maxTokens`). The thinking streams as `ThinkingDelta`s and counts against the token budget like any output;
   * each signed block goes into the transcript, so a tool loop sends it back as the API requires. A turn with no
   * room for 1024 tokens of thinking fails with `InvalidRequestError` before any request.
   */
  readonly thinking?: { readonly budgetTokens: number } | undefined
}

/**
 * The default of `streamIdleTimeout`.
 *
 * @since 0.1.0
 */
export const defaultStreamIdleTimeout: Duration.Duration = Duration.minutes(1)

/**
 * The default of `maxLineBytes`: 1 MiB.
 *
 * @since 0.1.0
 */
export const defaultMaxLineBytes = 1024 * 1024

/**
 * The default of `maxEventBytes`: 4 MiB.
 *
 * @since 0.1.0
 */
export const defaultMaxEventBytes = 4 * 1024 * 1024

/**
 * The minimum thinking budget the Messages API accepts.
 *
 * @since 0.1.0
 */
export const minThinkingBudget = 1024

/** The thinking budget of a turn of `maxTokens`, or why it cannot think as configured. */
const thinkingBudgetOf = (budgetTokens: number, maxTokens: number): number | string => {
  if (!Number.isInteger(budgetTokens) || budgetTokens < minThinkingBudget) {
    return `the thinking budget must be an integer of at least ${minThinkingBudget} tokens, not ${budgetTokens}`
  }
  const budget = Math.min(budgetTokens, maxTokens - 1)
  return budget >= minThinkingBudget
    ? budget
    : `the turn's maxTokens (${maxTokens}) leaves no room to think: thinking needs at least ${minThinkingBudget} tokens, and fewer than maxTokens`
}

/**
 * Builds the model. The SDK's own retries are off: Tether retries, so that it
 * can stop retrying when the run is interrupted.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<LanguageModel.Service> =>
  Effect.sync(() => {
    const model = options.model ?? defaultModel
    const fetch = options.fetch ?? defaultFetch
    const client = new Anthropic({
      apiKey: Redacted.isRedacted(options.apiKey) ? Redacted.value(options.apiKey) : options.apiKey,
      maxRetries: 0,
      timeout: Duration.toMillis(options.requestTimeout ?? Duration.minutes(2)),
      logLevel: options.logLevel ?? "off",
      ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
      ...(fetch === undefined ? {} : { fetch })
    })
    const idleTimeout = Duration.decode(options.streamIdleTimeout ?? defaultStreamIdleTimeout)
    const settings = {
      client,
      model,
      rateLimiter: options.rateLimiter,
      limits: {
        lineBytes: options.maxLineBytes ?? defaultMaxLineBytes,
        eventBytes: options.maxEventBytes ?? defaultMaxEventBytes
      },
      idle: Duration.isFinite(idleTimeout) ? IdleSweep.make(Duration.toMillis(idleTimeout)) : undefined,
      retry: retryPolicy({
        maxRetries: options.maxRetries ?? 3,
        retryBaseDelay: Duration.decode(options.retryBaseDelay ?? Duration.millis(500)),
        maxRetryDelay: Duration.decode(options.maxRetryDelay ?? Duration.seconds(30))
      })
    }
    const thinking = options.thinking?.budgetTokens
    /** The request's parameters, or why it cannot be sent. */
    const paramsOf = (request: LanguageModel.TurnRequest) => {
      const budget = thinking === undefined ? undefined : thinkingBudgetOf(thinking, request.maxTokens)
      return typeof budget === "string"
        ? new ModelError.InvalidRequestError({ message: budget })
        : toParams(model, request, budget)
    }
    return LanguageModel.LanguageModel.of({
      runTurn: (request, onEvents) => {
        const params = paramsOf(request)
        // No span of its own: the agent loop's `Agent.turn` span covers the call (a span per turn costs a few
        // KiB per live run and tens of microseconds).
        return params instanceof ModelError.InvalidRequestError
          ? Effect.fail(params)
          : runTurn(settings, params, request, onEvents)
      }
    })
  })

/**
 * The model as a layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<LanguageModel.LanguageModel> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/**
 * Options read from the environment: `ANTHROPIC_API_KEY` (required, redacted),
 * `ANTHROPIC_MODEL`, `ANTHROPIC_BASE_URL`, `ANTHROPIC_MAX_RETRIES`,
 * `ANTHROPIC_MAX_RETRY_DELAY`, `ANTHROPIC_REQUEST_TIMEOUT` and `ANTHROPIC_STREAM_IDLE_TIMEOUT` (durations such
 * as "30 seconds"), `ANTHROPIC_MAX_LINE_BYTES` and `ANTHROPIC_MAX_EVENT_BYTES` (integers).
 *
 * @since 0.1.0
 */
export const config: Config.Config<Options> = Config.all({
  apiKey: Config.redacted("ANTHROPIC_API_KEY"),
  model: Config.string("ANTHROPIC_MODEL").pipe(Config.withDefault(defaultModel)),
  baseURL: Config.option(Config.string("ANTHROPIC_BASE_URL")),
  maxRetries: Config.integer("ANTHROPIC_MAX_RETRIES").pipe(Config.withDefault(3)),
  maxRetryDelay: Config.duration("ANTHROPIC_MAX_RETRY_DELAY").pipe(Config.withDefault(Duration.seconds(30))),
  requestTimeout: Config.duration("ANTHROPIC_REQUEST_TIMEOUT").pipe(Config.withDefault(Duration.minutes(2))),
  streamIdleTimeout: Config.duration("ANTHROPIC_STREAM_IDLE_TIMEOUT").pipe(
    Config.withDefault(defaultStreamIdleTimeout)
  ),
  maxLineBytes: Config.integer("ANTHROPIC_MAX_LINE_BYTES").pipe(Config.withDefault(defaultMaxLineBytes)),
  maxEventBytes: Config.integer("ANTHROPIC_MAX_EVENT_BYTES").pipe(Config.withDefault(defaultMaxEventBytes))
}).pipe(Config.map(({ baseURL, ...options }) => ({ ...options, baseURL: Option.getOrUndefined(baseURL) })))

/**
 * `ANTHROPIC_API_KEY` is not set, or blank: what `layerConfig` fails with. Its message is one line that says where
 * to get a key and how to run without one.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingApiKeyError extends Schema.TaggedError<MissingApiKeyError>()("MissingApiKeyError", {
  variable: Schema.String,
  message: Schema.String
}) {}

const missingApiKey = () =>
  new MissingApiKeyError({
    variable: "ANTHROPIC_API_KEY",
    message:
      "ANTHROPIC_API_KEY is not set: create a key at https://console.anthropic.com/ and export it, or run offline " +
      "with @tether/testing (ScriptedModel, or the FakeAnthropic server as baseURL); in the Tether repository, " +
      "`pnpm start` without the key serves the chat on the fake server"
  })

/**
 * The model configured from the environment (see `config`); without `ANTHROPIC_API_KEY` it fails with
 * `MissingApiKeyError`. For options that do not come from the environment, such as a `rateLimiter`:
 * `Layer.effect(LanguageModel.LanguageModel, Effect.flatMap(AnthropicModel.config, (options) => AnthropicModel.make({ ...options, rateLimiter })))`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { AnthropicModel } from "@tether/anthropic"
 * import { ScriptedModel } from "@tether/testing"
 *
 * // The real API when ANTHROPIC_API_KEY is set, else a scripted model (and the reason, one line, in the log).
 * const offline = (reason: string) =>
 *   Layer.merge(ScriptedModel.layer([ScriptedModel.text("(offline)")]), Layer.effectDiscard(Effect.logWarning(reason)))
 * const model = AnthropicModel.layerConfig.pipe(
 *   Layer.catchAll((error) => (error._tag === "MissingApiKeyError" ? offline(error.message) : Layer.fail(error)))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const layerConfig: Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError | MissingApiKeyError> =
  Layer.effect(
    LanguageModel.LanguageModel,
    Effect.flatMap(
      Config.option(Config.redacted("ANTHROPIC_API_KEY")),
      (key): Effect.Effect<LanguageModel.Service, ConfigError.ConfigError | MissingApiKeyError> =>
        Option.isSome(key) && Redacted.value(key.value).trim() !== ""
          ? Effect.flatMap(config, make)
          : Effect.fail(missingApiKey())
    )
  )
