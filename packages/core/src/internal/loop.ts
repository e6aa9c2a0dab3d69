import { Effect, Ref, Runtime, Stream } from "effect"
import type { Agent } from "../Agent.js"
import { MaxTurnsError } from "../AgentError.js"
import * as CancelReason from "../CancelReason.js"
import * as LanguageModel from "../LanguageModel.js"
import * as Message from "../Message.js"
import type { ModelError } from "../ModelError.js"
import * as RunEvent from "../RunEvent.js"
import type { Reservation } from "../TokenBudget.js"
import type { CurrentRun, RunContext } from "./context.js"
import { runToolUse } from "./tools.js"
import type { TranscriptState } from "./transcript.js"

interface CompletedToolUse {
  readonly id: string
  readonly name: string
  readonly inputJson: string
}

const parseInput = (inputJson: string): unknown => {
  try {
    return JSON.parse(inputJson)
  } catch {
    return inputJson
  }
}

const emitTokens = (ctx: RunContext) =>
  Effect.flatMap(ctx.ledger.snapshot, (snapshot) =>
    ctx.emit(
      (c) =>
        new RunEvent.TokensUsed(
          {
            ...c,
            tokens: snapshot.used,
            ...(Number.isFinite(snapshot.ceiling) ? { ceiling: snapshot.ceiling } : {})
          },
          true
        )
    )
  )

/**
 * Streams one turn into the transcript state, keeping the budget informed chunk
 * by chunk. Settles the reservation on any exit: on real usage when the stream
 * ended, on the input reported by the provider plus output estimated from the
 * streamed deltas when it was cut short.
 */
const streamTurn = (
  model: LanguageModel.Service,
  request: LanguageModel.TurnRequest,
  estimatedInput: number,
  reservation: Reservation,
  ctx: RunContext,
  state: Ref.Ref<TranscriptState>
): Effect.Effect<ReadonlyArray<CompletedToolUse>, ModelError> =>
  Effect.suspend(() => {
    let inputTokens: number | undefined
    let reportedOutput = 0
    let streamedChars = 0
    let finished = false
    const toolUses: Array<CompletedToolUse> = []
    const usage = () => ({
      inputTokens: inputTokens ?? estimatedInput,
      outputTokens: Math.max(reportedOutput, Math.ceil(streamedChars / 4))
    })
    const onEvent = (event: LanguageModel.ModelEvent): Effect.Effect<void> => {
      switch (event._tag) {
        case "TextDelta":
          streamedChars += event.text.length
          return Effect.zipRight(
            Ref.update(state, (s) => ({
              ...s,
              streaming: { text: (s.streaming?.text ?? "") + event.text, toolUses: s.streaming?.toolUses ?? [] }
            })),
            Effect.zipRight(
              ctx.emit((c) => new RunEvent.TextDelta({ ...c, text: event.text }, true)),
              reservation.observe(usage())
            )
          )
        case "ThinkingDelta":
        case "ToolInputDelta":
          streamedChars += event._tag === "ThinkingDelta" ? event.text.length : event.partialJson.length
          return reservation.observe(usage())
        case "ToolUseStart":
          return Effect.void
        case "ToolUseEnd": {
          toolUses.push(event)
          const block = {
            type: "tool_use" as const,
            id: event.id,
            name: event.name,
            input: parseInput(event.inputJson)
          }
          return Ref.update(state, (s) => ({
            ...s,
            streaming: { text: s.streaming?.text ?? "", toolUses: [...(s.streaming?.toolUses ?? []), block] },
            toolStatus: new Map(s.toolStatus).set(event.id, { _tag: "NotStarted" })
          }))
        }
        case "Usage":
          inputTokens = event.inputTokens
          reportedOutput = Math.max(reportedOutput, event.outputTokens)
          return Effect.zipRight(reservation.observe(usage()), emitTokens(ctx))
        case "Stop":
          finished = true
          return Effect.void
      }
    }
    return Ref.update(state, (s) => ({ ...s, streaming: { text: "", toolUses: [] } })).pipe(
      Effect.zipRight(consume(model, request, onEvent)),
      Effect.as(toolUses as ReadonlyArray<CompletedToolUse>),
      Effect.onExit(() => Effect.zipRight(reservation.settle({ ...usage(), estimated: !finished }), emitTokens(ctx))),
      Effect.withSpan("Agent.turn", { attributes: { agent: ctx.agentPath }, captureStackTrace: false })
    )
  })

/**
 * Feeds a turn's events to `onEvent`: through the provider's push-based `runTurn` when it has one (every effect
 * `onEvent` returns is synchronous: state, events, the ledger), else through its `Stream`.
 */
const consume = (
  model: LanguageModel.Service,
  request: LanguageModel.TurnRequest,
  onEvent: (event: LanguageModel.ModelEvent) => Effect.Effect<void>
): Effect.Effect<void, ModelError> => {
  const runTurn = model.runTurn
  if (runTurn === undefined) return Stream.runForEach(model.streamTurn(request), onEvent)
  return Effect.flatMap(Effect.runtime<never>(), (runtime) => {
    const runSync = Runtime.runSync(runtime)
    // One synchronous run per batch the provider pushes, not per event.
    return runTurn(request, (events) => runSync(Effect.forEach(events, onEvent, { discard: true })))
  })
}

/** Moves the streamed assistant message into the transcript. */
const finishTurn = (state: Ref.Ref<TranscriptState>) =>
  Ref.update(state, (s) => {
    const text = s.streaming?.text ?? ""
    const content = [...(text.length > 0 ? [{ type: "text" as const, text }] : []), ...(s.streaming?.toolUses ?? [])]
    const messages: ReadonlyArray<Message.Message> =
      content.length > 0 ? [...s.messages, { role: "assistant", content }] : s.messages
    return { ...s, messages, streaming: undefined }
  })

/** The result of an agent's loop: its last text and its whole transcript. */
export interface LoopResult {
  readonly text: string
  readonly transcript: ReadonlyArray<Message.Message>
}

/**
 * The agent loop: a turn, then the turn's tool calls (concurrently, bounded),
 * their results fed back, until the model stops asking for tools or `maxTurns`
 * is reached. Budget exhaustion before a turn cancels the whole run.
 */
export const runLoop = <R>(
  agent: Agent<R>,
  ctx: RunContext,
  state: Ref.Ref<TranscriptState>
): Effect.Effect<LoopResult, ModelError | MaxTurnsError, LanguageModel.LanguageModel | Exclude<R, CurrentRun>> =>
  Effect.gen(function* () {
    const model = yield* LanguageModel.LanguageModel
    const tools = agent.tools.map((tool) => tool.definition)
    for (let turn = 1; turn <= agent.maxTurns; turn++) {
      yield* ctx.emit((c) => new RunEvent.TurnStarted({ ...c, turn }, true))
      const { messages } = yield* Ref.get(state)
      const base = { system: agent.system, messages, tools }
      const estimatedInput = LanguageModel.estimateInputTokens(base)
      const reservation = yield* ctx.ledger
        .reserve({ estimatedInput, maxTokens: agent.maxTokens })
        .pipe(
          Effect.catchTag("BudgetExhaustedError", (error) =>
            Effect.zipRight(
              ctx.requestCancel(new CancelReason.BudgetExceeded({ ceiling: error.ceiling, used: error.used })),
              Effect.never
            )
          )
        )
      const request = { ...base, maxTokens: reservation.maxTokens, signal: ctx.cancelled }
      const toolUses = yield* streamTurn(model, request, estimatedInput, reservation, ctx, state)
      yield* finishTurn(state)
      if (toolUses.length === 0) {
        const { messages: transcript } = yield* Ref.get(state)
        const last = transcript[transcript.length - 1]
        return { text: last?.role === "assistant" ? Message.text(last) : "", transcript }
      }
      const results = yield* Effect.forEach(toolUses, (use) => runToolUse(agent.tools, use, ctx, state), {
        concurrency: agent.toolConcurrency
      })
      yield* Ref.update(state, (s) => ({
        ...s,
        messages: [...s.messages, { role: "user" as const, content: results }],
        toolStatus: new Map()
      }))
    }
    return yield* new MaxTurnsError({ agent: agent.name, maxTurns: agent.maxTurns })
  })
