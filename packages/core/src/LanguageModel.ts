/**
 * The service a model provider implements: one turn in, typed model events
 * out, pushed to a callback as they arrive (`runTurn`). Interrupting the turn
 * must abort the provider's request at once (not at the next token). A
 * provider written as a `Stream` of events becomes one with `fromStream`; a
 * turn can be read back as a `Stream` with `streamTurn`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LanguageModel, Message } from "@tether/core"
 *
 * // A provider that answers every turn with the same text.
 * const echo = LanguageModel.fromStream(() =>
 *   Stream.make(
 *     LanguageModel.ModelEvent.TextDelta({ text: "hello" }),
 *     LanguageModel.ModelEvent.Stop({ reason: "end_turn" })
 *   )
 * )
 *
 * const firstTurn = LanguageModel.streamTurn({ messages: [Message.user("hi")], tools: [], maxTokens: 256 }).pipe(
 *   Stream.runCollect,
 *   Effect.provideService(LanguageModel.LanguageModel, echo)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Chunk, Context, Data, Effect, Exit, Stream } from "effect"
import type { Message, RedactedThinkingBlock, ThinkingBlock } from "./Message.js"
import type { ModelError } from "./ModelError.js"
import * as RequestStop from "./internal/requestStop.js"

/**
 * What a tool looks like to the model.
 *
 * @since 0.1.0
 */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  /** JSON Schema of the tool's input. */
  readonly inputSchema: object
}

/**
 * One model turn.
 *
 * @since 0.1.0
 */
export interface TurnRequest {
  readonly system?: string | undefined
  readonly messages: ReadonlyArray<Message>
  readonly tools: ReadonlyArray<ToolDefinition>
  /** The most output tokens the turn may produce; Tether clamps it to what the budget has left. */
  readonly maxTokens: number
  /**
   * Aborted, synchronously, when the run is cancelled: a provider that aborts its HTTP request on it closes
   * the socket before any fiber unwinds. (Interrupting the stream's consumer must abort the request too.) Its
   * `reason` is the run's `CancelReason`. A run makes it when it is first read: `onAbort` listens without it.
   */
  readonly signal?: AbortSignal | undefined
}

/**
 * Calls `listener` once when `request` is aborted (its run cancelled), with the reason (at once if it has been); the
 * function returned stops listening. A run's request is listened to directly, without making its `signal`: an
 * `AbortSignal` on Node holds about 1 KiB for as long as it lives (a live stream's whole length) and makes an
 * `Event` for each abort. Any other request (a copy of a run's, one made by hand) is listened to on its `signal`.
 *
 * @example
 * ```ts
 * import { LanguageModel, Message } from "@tether/core"
 *
 * // A request made by hand is heard through its signal; a run's, directly.
 * const controller = new AbortController()
 * const request: LanguageModel.TurnRequest = {
 *   messages: [Message.user("hi")],
 *   tools: [],
 *   maxTokens: 256,
 *   signal: controller.signal
 * }
 * const stopListening = LanguageModel.onAbort(request, (reason) => console.log("aborted:", reason))
 * controller.abort("stop") // aborted: stop
 * // Once the response has been read to its end: stopListening()
 * ```
 *
 * @since 0.1.0
 */
export const onAbort: (request: TurnRequest, listener: (reason: unknown) => void) => () => void = RequestStop.onAbort

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 */
export type StopReason = "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | "pause_turn" | "refusal" | "unknown"

/**
 * What a turn streams. `Usage` figures are cumulative for the turn (a later one
 * replaces an earlier one); input tokens arrive first, output tokens last.
 *
 * @since 0.1.0
 */
export type ModelEvent = Data.TaggedEnum<{
  TextDelta: { readonly text: string }
  ThinkingDelta: { readonly text: string }
  /** A thinking block is complete and signed (or arrived redacted): it goes into the assistant message. */
  ThinkingEnd: { readonly block: ThinkingBlock | RedactedThinkingBlock }
  ToolUseStart: { readonly id: string; readonly name: string }
  ToolInputDelta: { readonly id: string; readonly partialJson: string }
  /** `inputJson` is the whole input as the model sent it, not yet decoded. */
  ToolUseEnd: { readonly id: string; readonly name: string; readonly inputJson: string }
  Usage: { readonly inputTokens: number; readonly outputTokens: number }
  Stop: { readonly reason: StopReason }
}>

/**
 * Constructors of `ModelEvent`.
 *
 * @since 0.1.0
 */
export const ModelEvent = Data.taggedEnum<ModelEvent>()

/** @since 0.1.0 */
export interface Service {
  /**
   * Runs one turn. `onEvents` is called synchronously with the events as they arrive, in order (it does not
   * throw); the effect ends when the turn does. Interrupting the effect aborts the provider's request before it
   * waits on anything, and so does `request.signal`, which the run aborts first when it is cancelled.
   */
  readonly runTurn: (
    request: TurnRequest,
    onEvents: (events: ReadonlyArray<ModelEvent>) => void
  ) => Effect.Effect<void, ModelError>
}

/**
 * The model used by agent runs.
 *
 * @since 0.1.0
 */
export class LanguageModel extends Context.Tag("@tether/core/LanguageModel")<LanguageModel, Service>() {}

/**
 * A provider from a function that streams each turn's events: the stream is run to its end for each turn, its
 * chunks pushed as they come, and interrupting the turn interrupts the stream (whose finalizers must abort the
 * request at once).
 *
 * @since 0.1.0
 */
export const fromStream = (streamTurn: (request: TurnRequest) => Stream.Stream<ModelEvent, ModelError>): Service => ({
  runTurn: (request, onEvents) =>
    Stream.runForEachChunk(streamTurn(request), (chunk) => Effect.sync(() => onEvents(Chunk.toReadonlyArray(chunk))))
})

/**
 * One turn of `model` as a `Stream` of its events. Interrupting the stream's consumer interrupts the turn.
 *
 * @since 0.1.0
 */
export const toStream = (model: Service, request: TurnRequest): Stream.Stream<ModelEvent, ModelError> =>
  Stream.asyncPush<ModelEvent, ModelError>(
    (emit) =>
      Effect.forkScoped(
        model
          .runTurn(request, (events) => void emit.array(events))
          .pipe(
            Effect.onExit((exit) =>
              Effect.sync(() => {
                if (Exit.isSuccess(exit)) return void emit.end()
                if (Cause.isInterruptedOnly(exit.cause)) return
                const failure = Cause.failureOption(exit.cause)
                if (failure._tag === "Some") emit.fail(failure.value)
                else emit.halt(exit.cause)
              })
            )
          )
      ),
    { bufferSize: "unbounded" }
  )

/**
 * One turn of the `LanguageModel` in context as a `Stream` of its events (see `toStream`).
 *
 * @since 0.1.0
 */
export const streamTurn = (request: TurnRequest): Stream.Stream<ModelEvent, ModelError, LanguageModel> =>
  Stream.unwrap(Effect.map(LanguageModel, (model) => toStream(model, request)))

/**
 * A rough token count for text: about four characters a token. Used to reserve
 * budget before a request and to estimate the output of an aborted stream.
 *
 * @since 0.1.0
 */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4)

/** Length of each message's or tool's JSON, by object: a transcript's messages are measured once, not every turn. */
const jsonLengths = new WeakMap<object, number>()

/** The length of `JSON.stringify(items)`, from the memoized lengths of its items. */
const jsonArrayLength = (items: ReadonlyArray<object>): number => {
  let length = items.length === 0 ? 2 : items.length + 1
  for (const item of items) {
    let itemLength = jsonLengths.get(item)
    if (itemLength === undefined) {
      itemLength = JSON.stringify(item).length
      jsonLengths.set(item, itemLength)
    }
    length += itemLength
  }
  return length
}

/**
 * A rough token count for a whole request's input: its system prompt, and the JSON of its messages and tools, at
 * four characters a token. (Messages are immutable values: each one's JSON is measured once.)
 *
 * @since 0.1.0
 */
export const estimateInputTokens = (request: Omit<TurnRequest, "maxTokens">): number =>
  estimateTokens(request.system ?? "") +
  Math.ceil(jsonArrayLength(request.messages) / 4) +
  Math.ceil(jsonArrayLength(request.tools) / 4) +
  8
