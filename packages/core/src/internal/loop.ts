import { Context, Effect, Exit, FiberRef, Tracer } from "effect"
import type { Agent } from "../Agent.js"
import { MaxTurnsError } from "../AgentError.js"
import * as CancelReason from "../CancelReason.js"
import * as LanguageModel from "../LanguageModel.js"
import * as Message from "../Message.js"
import type { ToolUseBlock } from "../Message.js"
import type { ModelError } from "../ModelError.js"
import * as RunEvent from "../RunEvent.js"
import type { Reservation, Usage } from "../TokenBudget.js"
import type { RunContext } from "./context.js"
import { runToolUse } from "./tools.js"
import {
  assistantContent,
  type Cell,
  noToolStatus,
  nothingStreamed,
  state as transcriptState,
  type Streaming
} from "./transcript.js"
import { openSpan, type OpenSpan } from "./tracing.js"
import { make as makeEvent } from "./event.js"
import { isInterruptedOnly } from "./interruptedOnly.js"
import { request as turnRequest, type RequestStop } from "./requestStop.js"

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

/** An exit of interruptions only (a cancel's). */
const isInterruption = (exit: Exit.Exit<unknown, unknown>): boolean =>
  exit._tag === "Failure" && isInterruptedOnly(exit.cause)

const tokensEvent = (ctx: RunContext) => {
  const snapshot = ctx.ledger.unsafeSnapshot()
  // Two literals, not a spread of an optional `ceiling` (a spread into a literal costs microseconds on this path).
  ctx.publish((c) =>
    makeEvent(
      RunEvent.TokensUsed,
      c,
      Number.isFinite(snapshot.ceiling)
        ? {
            tokens: snapshot.used,
            ceiling: snapshot.ceiling,
            tally: snapshot.tally,
            reservedInFlight: snapshot.reservedInFlight
          }
        : { tokens: snapshot.used, tally: snapshot.tally, reservedInFlight: snapshot.reservedInFlight }
    )
  )
}

/**
 * One turn as it streams: what it has seen so far and how it takes each event. A class: a live turn is one object,
 * not a closure for each of its functions.
 */
class Turn {
  inputTokens: number | undefined = undefined
  outputTokens: number | undefined = undefined
  streamedChars = 0
  text = ""
  readonly toolUses: Array<CompletedToolUse> = []
  blocks: ReadonlyArray<ToolUseBlock> = []
  thinking: Streaming["thinking"] = []

  constructor(
    readonly reservation: Reservation,
    readonly ctx: RunContext,
    readonly cell: Cell,
    readonly stop: RequestStop,
    readonly span: OpenSpan | undefined,
    /** The fiber's context before the turn's span became its parent span, put back when the turn settles. */
    readonly outer: Context.Context<never>
  ) {}

  /** What the turn has streamed so far, as the transcript holds it. */
  streaming(): Streaming {
    return { thinking: this.thinking, text: this.text, toolUses: this.blocks }
  }

  usage(): Usage {
    return {
      inputTokens: this.inputTokens,
      outputTokens: this.outputTokens,
      streamedTokens: Math.ceil(this.streamedChars / 4)
    }
  }

  observe(): void {
    const tripped = this.reservation.unsafeObserve(this.usage())
    if (tripped !== undefined) {
      this.ctx.cancelNow(
        new CancelReason.BudgetExceeded({
          ceiling: tripped.ceiling,
          used: tripped.used,
          estimated: tripped.tally.estimated
        })
      )
    }
  }

  /** Synchronous, one event at a time: the transcript cell always holds what has streamed so far. */
  onEvent(event: LanguageModel.ModelEvent): void {
    const { cell, ctx } = this
    switch (event._tag) {
      case "TextDelta":
        this.streamedChars += event.text.length
        this.text += event.text
        cell.current = transcriptState(cell.current.messages, this.streaming(), cell.current.toolStatus)
        ctx.publish((c) => makeEvent(RunEvent.TextDelta, c, { text: event.text }))
        return this.observe()
      case "ThinkingDelta":
      case "ToolInputDelta":
        this.streamedChars += event._tag === "ThinkingDelta" ? event.text.length : event.partialJson.length
        return this.observe()
      case "ThinkingEnd":
        this.thinking = [...this.thinking, event.block]
        cell.current = transcriptState(cell.current.messages, this.streaming(), cell.current.toolStatus)
        return
      case "ToolUseStart":
        return
      case "ToolUseEnd": {
        this.toolUses.push(event)
        this.blocks = [
          ...this.blocks,
          { type: "tool_use", id: event.id, name: event.name, input: parseInput(event.inputJson) }
        ]
        const s = cell.current
        cell.current = transcriptState(
          s.messages,
          this.streaming(),
          new Map(s.toolStatus).set(event.id, { _tag: "NotStarted" })
        )
        return
      }
      case "Usage":
        this.inputTokens = event.inputTokens
        this.outputTokens = event.outputTokens
        this.observe()
        return tokensEvent(ctx)
      case "Stop":
        return
    }
  }

  settle(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    this.stop.release()
    const ctx = this.ctx
    const settled = Effect.zipRight(
      this.reservation.settle(this.usage()),
      Effect.sync(() => tokensEvent(ctx))
    )
    if (this.span === undefined) return settled
    this.span.end(exit)
    // An interrupted turn's fiber only unwinds from here on, and no one inherits its refs: its parent span is not
    // put back (a copy of the fiber's refs, about 1.5 KiB, for every cancelled turn).
    return isInterruption(exit) ? settled : Effect.zipRight(FiberRef.set(FiberRef.currentContext, this.outer), settled)
  }
}

/**
 * Streams one turn into the transcript cell, keeping the budget informed chunk
 * by chunk. Settles the reservation on any exit with what the provider reported
 * and the output estimated from the streamed deltas; the ledger checks the
 * reported figures and counts the larger (see `TokenBudget`); `release`s the
 * request's stop. The turn's span is its fiber's parent span while it streams:
 * set, and put back, by hand in the one uninterruptible region that settles the
 * turn (`Effect.withSpan` would hold a scope of its own for the whole turn).
 */
const streamTurn = (
  model: LanguageModel.Service,
  request: LanguageModel.TurnRequest,
  stop: RequestStop,
  reservation: Reservation,
  ctx: RunContext,
  cell: Cell
): Effect.Effect<ReadonlyArray<CompletedToolUse>, ModelError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(openSpan("Agent.turn", { agent: ctx.agentPath }), (span) =>
      Effect.withFiberRuntime<ReadonlyArray<CompletedToolUse>, ModelError>((fiber) => {
        cell.current = transcriptState(cell.current.messages, nothingStreamed, cell.current.toolStatus)
        const outer = fiber.getFiberRef(FiberRef.currentContext)
        const turn = new Turn(reservation, ctx, cell, stop, span, outer)
        const streamed = Effect.matchCauseEffect(
          restore(
            model.runTurn(request, (events) => {
              for (const event of events) turn.onEvent(event)
            })
          ),
          {
            onFailure: (cause) => Effect.zipRight(turn.settle(Exit.failCause(cause)), Effect.failCause(cause)),
            onSuccess: () => Effect.as(turn.settle(Exit.void), turn.toolUses as ReadonlyArray<CompletedToolUse>)
          }
        )
        return span === undefined
          ? streamed
          : Effect.zipRight(
              FiberRef.set(FiberRef.currentContext, Context.add(outer, Tracer.ParentSpan, span.span)),
              streamed
            )
      })
    )
  )

/** Moves the streamed assistant message into the transcript. */
const finishTurn = (cell: Cell) => {
  const s = cell.current
  const content = s.streaming === undefined ? [] : assistantContent(s.streaming)
  const messages: ReadonlyArray<Message.Message> =
    content.length > 0 ? [...s.messages, { role: "assistant", content }] : s.messages
  cell.current = transcriptState(messages, undefined, s.toolStatus)
}

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
  cell: Cell
): Effect.Effect<LoopResult, ModelError | MaxTurnsError, LanguageModel.LanguageModel | R> =>
  // Plain `flatMap`s, not `Effect.gen`: a generator (and its function's prototype, one per run) stays live for
  // the whole run, and the loop is what a live run is suspended in.
  Effect.flatMap(LanguageModel.LanguageModel, (model) => {
    const tools = agent.tools.map((tool) => tool.definition)
    const turnAt = (turn: number): Effect.Effect<LoopResult, ModelError | MaxTurnsError, R> => {
      if (turn > agent.maxTurns) return Effect.fail(new MaxTurnsError({ agent: agent.name, maxTurns: agent.maxTurns }))
      ctx.publish((c) => makeEvent(RunEvent.TurnStarted, c, { turn }))
      const { messages } = cell.current
      const base = { system: agent.system, messages, tools }
      const estimatedInput = LanguageModel.estimateInputTokens(base)
      const reserved = ctx.ledger.reserve({ estimatedInput, maxTokens: agent.maxTokens }).pipe(
        Effect.catchTag("BudgetExhaustedError", (error) =>
          Effect.zipRight(
            ctx.requestCancel(
              new CancelReason.BudgetExceeded({
                ceiling: error.ceiling,
                used: error.used,
                reservedInFlight: error.reservedInFlight,
                needed: error.needed
              })
            ),
            Effect.never
          )
        )
      )
      return Effect.flatMap(reserved, (reservation) => {
        const stop = ctx.requestStop()
        const request = turnRequest(base.system, messages, tools, reservation.maxTokens, stop)
        return Effect.flatMap(streamTurn(model, request, stop, reservation, ctx, cell), (toolUses) => {
          finishTurn(cell)
          if (toolUses.length === 0) {
            const transcript = cell.current.messages
            const last = transcript[transcript.length - 1]
            return Effect.succeed({ text: last?.role === "assistant" ? Message.text(last) : "", transcript })
          }
          // One call (the common case) runs on this fiber; several run concurrently, bounded.
          const results =
            toolUses.length === 1
              ? Effect.map(runToolUse(agent.tools, toolUses[0]!, ctx, cell), (result) => [result])
              : Effect.forEach(toolUses, (use) => runToolUse(agent.tools, use, ctx, cell), {
                  concurrency: agent.toolConcurrency
                })
          return Effect.flatMap(results, (content) => {
            cell.current = transcriptState(
              [...cell.current.messages, { role: "user" as const, content }],
              cell.current.streaming,
              noToolStatus
            )
            return turnAt(turn + 1)
          })
        })
      })
    }
    return Effect.suspend(() => turnAt(1))
  })
