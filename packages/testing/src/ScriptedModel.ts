/**
 * A deterministic `LanguageModel` for tests: each turn follows a script of
 * text chunks, tool calls, delays (on the `TestClock` under `it.effect`) and
 * failures. It records every request and how many of its streams are open, so
 * a test can check that an interrupted run left no stream behind. Like a real
 * provider it stops a turn at the request's `max_tokens`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Agent, AgentRun, Tool } from "@tether/core"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const search = Tool.make({
 *   name: "search",
 *   description: "Searches the docs",
 *   input: Schema.Struct({ query: Schema.String }),
 *   output: Schema.String,
 *   handler: ({ query }) => Effect.succeed(`3 pages about ${query}`)
 * })
 * const agent = Agent.make({ name: "librarian", tools: [search] })
 *
 * // Turn 1 calls the tool; turn 2 answers in 3 chunks, 100 ms apart (on the TestClock under it.effect).
 * const model = ScriptedModel.layer([
 *   [ScriptedModel.toolUse("search", { query: "effect" })],
 *   ScriptedModel.text("Found it.", { chunks: 3, delay: "100 millis" })
 * ])
 *
 * const program = Effect.gen(function* () {
 *   const result = yield* AgentRun.run(agent, "find effect")
 *   const recorder = yield* ScriptedModel.ScriptedModel
 *   const requests = yield* recorder.requests
 *   return { text: result.text, turns: requests.length, openStreams: yield* recorder.openStreams }
 * })
 * console.log(await Effect.runPromise(program.pipe(Effect.provide(model))))
 * // { text: 'Found it.', turns: 2, openStreams: 0 }
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Chunk, Context, Effect, Exit, Fiber, FiberId, Layer, Ref, Runtime, Stream } from "effect"
import type { Duration } from "effect"
import { LanguageModel } from "@tether/core"
import type { ModelError } from "@tether/core"

/**
 * @since 0.1.0
 * @category script
 */
export type Step =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "ToolUse"; readonly id: string | undefined; readonly name: string; readonly inputJson: string }
  | { readonly _tag: "Delay"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "Fail"; readonly error: ModelError.ModelError }
  | { readonly _tag: "Thinking"; readonly text: string; readonly signature: string }
  | { readonly _tag: "Usage"; readonly inputTokens: number; readonly outputTokens: number }

/**
 * One turn's steps.
 *
 * @since 0.1.0
 * @category script
 */
export type Turn = ReadonlyArray<Step>

/**
 * A script: turns in order (the last is repeated), or a function of the request.
 *
 * @since 0.1.0
 * @category script
 */
export type Script = ReadonlyArray<Turn> | ((request: LanguageModel.TurnRequest, index: number) => Turn)

/**
 * Text in `chunks` pieces, `delay` before each.
 *
 * @since 0.1.0
 * @category script
 */
export const text = (
  content: string,
  options?: { readonly chunks?: number | undefined; readonly delay?: Duration.DurationInput | undefined }
): Turn => {
  const chunks = Math.max(1, Math.min(options?.chunks ?? 1, content.length))
  const size = Math.ceil(content.length / chunks)
  const steps: Array<Step> = []
  for (let at = 0; at < content.length; at += size) {
    if (options?.delay !== undefined) steps.push({ _tag: "Delay", duration: options.delay })
    steps.push({ _tag: "Text", text: content.slice(at, at + size) })
  }
  return steps
}

/**
 * A tool call with `input` sent as JSON.
 *
 * @since 0.1.0
 * @category script
 */
export const toolUse = (name: string, input: unknown, options?: { readonly id?: string | undefined }): Step => ({
  _tag: "ToolUse",
  id: options?.id,
  name,
  inputJson: JSON.stringify(input)
})

/**
 * A tool call whose input is `inputJson` verbatim (for malformed input).
 *
 * @since 0.1.0
 * @category script
 */
export const toolUseRaw = (name: string, inputJson: string, options?: { readonly id?: string | undefined }): Step => ({
  _tag: "ToolUse",
  id: options?.id,
  name,
  inputJson
})

/**
 * A thinking block: its text as one `ThinkingDelta`, then the signed block (`ThinkingEnd`).
 *
 * @since 0.1.0
 * @category script
 */
export const thinking = (text: string, options?: { readonly signature?: string | undefined }): Step => ({
  _tag: "Thinking",
  text,
  signature: options?.signature ?? "scripted-signature"
})

/**
 * A usage report, sent as is: any figures, even negative, fractional, `NaN` or absurd ones, to test that the
 * ledger does not trust them. A turn with usage steps reports only those (no usage of its own).
 *
 * @since 0.1.0
 * @category script
 */
export const usage = (inputTokens: number, outputTokens: number): Step => ({ _tag: "Usage", inputTokens, outputTokens })

/**
 * @since 0.1.0
 * @category script
 */
export const delay = (duration: Duration.DurationInput): Step => ({ _tag: "Delay", duration })

/**
 * @since 0.1.0
 * @category script
 */
export const fail = (error: ModelError.ModelError): Step => ({ _tag: "Fail", error })

/**
 * What a test can read back from the model.
 *
 * @since 0.1.0
 * @category recorder
 */
export interface Recorder {
  readonly requests: Effect.Effect<ReadonlyArray<LanguageModel.TurnRequest>>
  /** Streams started and not yet released. */
  readonly openStreams: Effect.Effect<number>
  /** Text and tool-input chunks emitted, across all turns. */
  readonly chunksEmitted: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category recorder
 */
export class ScriptedModel extends Context.Tag("@tether/testing/ScriptedModel")<ScriptedModel, Recorder>() {}

let toolUseCounter = 0

/**
 * @since 0.1.0
 * @category constructors
 */
export interface Options {
  /** Keep streaming past the request's `max_tokens`, like a provider that ignores it (to test the ledger's own cap). */
  readonly ignoreMaxTokens?: boolean | undefined
  /**
   * How a turn's events reach the run. `"push"` (the default) delivers them from a fiber of the model's own,
   * outside the run's fiber tree, and stops delivering the moment the request's signal is aborted: the way a
   * provider on an HTTP client does (`AnthropicModel`). `"stream"` builds the model with
   * `LanguageModel.fromStream`, the way a provider written as a `Stream` does. Run interruption tests over both.
   */
  readonly delivery?: Delivery | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export type Delivery = "push" | "stream"

/**
 * Both deliveries, for tests that run over each.
 *
 * @since 0.1.0
 * @category constructors
 */
export const deliveries: ReadonlyArray<Delivery> = ["push", "stream"]

const turnEvents = (request: LanguageModel.TurnRequest, turn: Turn, onChunk: Effect.Effect<void>, options: Options) =>
  Stream.suspend(() => {
    const inputTokens = LanguageModel.estimateInputTokens(request)
    let outputTokens = 0
    let usedTools = false
    let truncated = false
    const emitStep = (step: Step): Stream.Stream<LanguageModel.ModelEvent, ModelError.ModelError> => {
      if (truncated) return Stream.empty
      switch (step._tag) {
        case "Delay":
          return Stream.drain(Stream.fromEffect(Effect.sleep(step.duration)))
        case "Fail":
          return Stream.fail(step.error)
        case "Usage":
          return Stream.make(
            LanguageModel.ModelEvent.Usage({ inputTokens: step.inputTokens, outputTokens: step.outputTokens })
          )
        case "Text": {
          const tokens = LanguageModel.estimateTokens(step.text)
          const allowed = options.ignoreMaxTokens ? tokens : Math.max(0, request.maxTokens - outputTokens)
          const content = tokens > allowed ? step.text.slice(0, allowed * 4) : step.text
          outputTokens += Math.min(tokens, allowed)
          truncated = !options.ignoreMaxTokens && tokens >= allowed && outputTokens >= request.maxTokens
          return content.length === 0
            ? Stream.empty
            : Stream.fromEffect(Effect.as(onChunk, LanguageModel.ModelEvent.TextDelta({ text: content })))
        }
        case "Thinking":
          outputTokens += LanguageModel.estimateTokens(step.text)
          return Stream.fromEffect(
            Effect.as(onChunk, LanguageModel.ModelEvent.ThinkingDelta({ text: step.text }))
          ).pipe(
            Stream.concat(
              Stream.make(
                LanguageModel.ModelEvent.ThinkingEnd({
                  block: { type: "thinking", thinking: step.text, signature: step.signature }
                })
              )
            )
          )
        case "ToolUse": {
          usedTools = true
          const id = step.id ?? `toolu_scripted_${++toolUseCounter}`
          outputTokens += LanguageModel.estimateTokens(step.inputJson)
          return Stream.concat(
            Stream.make(LanguageModel.ModelEvent.ToolUseStart({ id, name: step.name })),
            Stream.fromEffect(
              Effect.as(onChunk, LanguageModel.ModelEvent.ToolInputDelta({ id, partialJson: step.inputJson }))
            )
          ).pipe(
            Stream.concat(
              Stream.make(LanguageModel.ModelEvent.ToolUseEnd({ id, name: step.name, inputJson: step.inputJson }))
            )
          )
        }
      }
    }
    const reportsUsage = !turn.some((step) => step._tag === "Usage")
    const report = (outputTokens: number) =>
      reportsUsage ? [LanguageModel.ModelEvent.Usage({ inputTokens, outputTokens })] : []
    return Stream.fromIterable(report(0)).pipe(
      Stream.concat(Stream.flatMap(Stream.fromIterable(turn), emitStep)),
      Stream.concat(
        Stream.suspend(() =>
          Stream.fromIterable([
            ...report(outputTokens),
            LanguageModel.ModelEvent.Stop({ reason: truncated ? "max_tokens" : usedTools ? "tool_use" : "end_turn" })
          ])
        )
      )
    )
  })

/**
 * A turn delivered the way an HTTP provider delivers it: `events` run on a fiber of their own (a root fiber, as
 * a provider's I/O callbacks are outside the run's tree), each chunk pushed to `onEvents` unless the request's
 * signal was aborted; the signal's abort stops the fiber at once, and interrupting the turn interrupts and awaits
 * it.
 */
const pushed = (
  events: Stream.Stream<LanguageModel.ModelEvent, ModelError.ModelError>,
  signal: AbortSignal | undefined,
  onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
): Effect.Effect<void, ModelError.ModelError> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) =>
    Effect.async<void, ModelError.ModelError>((resume) => {
      const driver = Runtime.runFork(runtime)(
        Stream.runForEachChunk(events, (chunk) =>
          Effect.sync(() => {
            if (signal?.aborted !== true) onEvents(Chunk.toReadonlyArray(chunk))
          })
        )
      )
      const onAbort = () => driver.unsafeInterruptAsFork(FiberId.none)
      signal?.addEventListener("abort", onAbort, { once: true })
      driver.addObserver((exit) => {
        signal?.removeEventListener("abort", onAbort)
        if (Exit.isSuccess(exit)) return resume(Effect.void)
        // Aborted by the signal: the run is being cancelled, and interrupts this turn too.
        if (!Cause.isInterruptedOnly(exit.cause)) resume(Effect.failCause(exit.cause))
      })
      return Fiber.interrupt(driver)
    })
  )

/**
 * Makes a scripted model and its recorder.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (script: Script, options: Options = {}) =>
  Effect.gen(function* () {
    const requests = yield* Ref.make<ReadonlyArray<LanguageModel.TurnRequest>>([])
    const open = yield* Ref.make(0)
    const chunks = yield* Ref.make(0)
    const streamTurn = (request: LanguageModel.TurnRequest) =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          yield* Effect.acquireRelease(
            Ref.update(open, (n) => n + 1),
            () => Ref.update(open, (n) => n - 1)
          )
          const index = yield* Ref.modify(requests, (all) => [all.length, [...all, request]])
          const turn =
            typeof script === "function" ? script(request, index) : (script[Math.min(index, script.length - 1)] ?? [])
          return turnEvents(
            request,
            turn,
            Ref.update(chunks, (n) => n + 1),
            options
          )
        })
      )
    const service: LanguageModel.Service =
      options.delivery === "stream"
        ? LanguageModel.fromStream(streamTurn)
        : { runTurn: (request, onEvents) => pushed(streamTurn(request), request.signal, onEvents) }
    const recorder: Recorder = {
      requests: Ref.get(requests),
      openStreams: Ref.get(open),
      chunksEmitted: Ref.get(chunks)
    }
    return { service, recorder }
  })

/**
 * A layer providing the scripted `LanguageModel` and its `ScriptedModel` recorder.
 *
 * @since 0.1.0
 * @category constructors
 */
export const layer = (script: Script, options?: Options): Layer.Layer<LanguageModel.LanguageModel | ScriptedModel> =>
  Layer.effectContext(
    Effect.map(make(script, options), ({ recorder, service }) =>
      Context.make(LanguageModel.LanguageModel, service).pipe(Context.add(ScriptedModel, recorder))
    )
  )
