import { Cause, Duration, Effect, Either, Exit, ParseResult, Schema } from "effect"
import { StagedWriteError } from "../StagedWrites.js"
import type * as StagedWrites from "../StagedWrites.js"
import type { ToolResultBlock } from "../Message.js"
import * as RunEvent from "../RunEvent.js"
import * as Tool from "../Tool.js"
import { provide, type RunContext } from "./context.js"
import { runEnded } from "./staging.js"
import { state as transcriptState, type Cell, type ToolStatus } from "./transcript.js"
import { describeError } from "./describe.js"
import { withSpan } from "./tracing.js"
import { make as makeEvent } from "./event.js"

const setStatus = (cell: Cell, id: string, status: ToolStatus) =>
  Effect.sync(() => {
    const s = cell.current
    cell.current = transcriptState(s.messages, s.streaming, new Map(s.toolStatus).set(id, status))
  })

/** Each tool's JSON-input decoder, built once (a new `parseJson` schema per call would be compiled per call). */
/**
 * A Schema parse run synchronously (an `Either`, no fiber steps: most tools' schemas are synchronous, and a tool
 * call parses twice) where it succeeds so; otherwise run as an effect, which handles an asynchronous schema and says
 * why an input is rejected, as before.
 */
const syncFirst =
  <I, A>(
    sync: (input: I) => Either.Either<A, ParseResult.ParseError>,
    effectful: (input: I) => Effect.Effect<A, ParseResult.ParseError>
  ) =>
  (input: I): Effect.Effect<A, ParseResult.ParseError> => {
    const parsed = sync(input)
    return Either.isRight(parsed) ? Effect.succeed(parsed.right) : effectful(input)
  }

type Parser = (input: unknown) => Effect.Effect<unknown, ParseResult.ParseError>

const decoders = new WeakMap<Tool.Any, Parser>()
const encoders = new WeakMap<Tool.Any, Parser>()

const decoderOf = (tool: Tool.Any): Parser => {
  let decoder = decoders.get(tool)
  if (decoder === undefined) {
    const schema = Schema.parseJson(tool.input)
    decoder = syncFirst(Schema.decodeUnknownEither(schema), Schema.decodeUnknown(schema))
    decoders.set(tool, decoder)
  }
  return decoder
}

const encoderOf = (tool: Tool.Any): Parser => {
  let encoder = encoders.get(tool)
  if (encoder === undefined) {
    encoder = syncFirst(Schema.encodeUnknownEither(tool.output), Schema.encodeUnknown(tool.output))
    encoders.set(tool, encoder)
  }
  return encoder
}

const decodeInput = (tool: Tool.Any, inputJson: string) =>
  Effect.suspend(() => decoderOf(tool)(inputJson)).pipe(
    Effect.mapError(
      (error) => new Tool.ToolInputError({ tool: tool.name, issue: ParseResult.TreeFormatter.formatErrorSync(error) })
    ),
    // Schema's parser itself can throw on hostile input (synchronously, hence the suspend): effect 3.22 reads the tag
    // of a union of tagged structs with `String(...)`, which throws for `{"kind": {"toString": 0}}`. The model gets
    // that as bad input too.
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new Tool.ToolInputError({ tool: tool.name, issue: `the input could not be checked: ${describeError(defect)}` })
      )
    )
  )

const encodeOutput = (tool: Tool.Any, output: unknown) =>
  Effect.suspend(() => encoderOf(tool)(output)).pipe(
    Effect.map((encoded) => ({
      output: encoded as unknown,
      content: typeof encoded === "string" ? encoded : JSON.stringify(encoded)
    })),
    Effect.orDie
  )

const withTimeout = <A, E, R>(tool: Tool.Any, effect: Effect.Effect<A, E, R>) =>
  tool.timeout === undefined
    ? effect
    : Effect.timeoutFail(effect, {
        duration: tool.timeout,
        onTimeout: () => new Tool.ToolTimeoutError({ tool: tool.name, millis: Duration.toMillis(tool.timeout!) })
      })

const callEnded = (tool: string) =>
  new StagedWriteError({ operation: "stage", message: `the call of tool "${tool}" has already ended` })

/**
 * Runs one tool call of a turn and returns its result block. Bad input, unknown
 * tools, handler failures and timeouts become error results; defects fail the run.
 */
export const runToolUse = <R>(
  tools: ReadonlyArray<Tool.Any<R>>,
  use: { readonly id: string; readonly name: string; readonly inputJson: string },
  ctx: RunContext,
  cell: Cell
): Effect.Effect<ToolResultBlock, never, R> => {
  const failed = (error: string) =>
    Effect.as(
      Effect.zipRight(
        setStatus(cell, use.id, { _tag: "Failed", content: error }),
        ctx.emit((c) => makeEvent(RunEvent.ToolFailed, c, { toolUseId: use.id, tool: use.name, error }))
      ),
      { type: "tool_result", toolUseId: use.id, content: error, isError: true } satisfies ToolResultBlock
    )
  const tool = tools.find((candidate) => candidate.name === use.name)
  if (tool === undefined) {
    const error = new Tool.UnknownToolError({ tool: use.name, available: tools.map((t) => t.name) })
    return failed(`Unknown tool "${use.name}". Available tools: ${error.available.join(", ") || "none"}.`)
  }
  return Effect.gen(function* () {
    const decoded = yield* Effect.either(decodeInput(tool, use.inputJson))
    if (decoded._tag === "Left") return yield* failed(`Invalid input for tool "${tool.name}":\n${decoded.left.issue}`)
    yield* setStatus(cell, use.id, { _tag: "Running" })
    yield* ctx.emit((c) =>
      makeEvent(RunEvent.ToolStarted, c, { toolUseId: use.id, tool: tool.name, input: JSON.parse(use.inputJson) })
    )
    // The call's writes wait in a buffer and reach the run only if the call succeeds.
    const buffer: Array<StagedWrites.Write> = []
    let isOpen = true
    const callCtx: RunContext = {
      ...ctx,
      toolUseId: use.id,
      stageWrite: (write) =>
        Effect.suspend(() => {
          if (!ctx.acceptsWrites()) return Effect.fail(runEnded())
          if (!isOpen) return Effect.fail(callEnded(tool.name))
          buffer.push(write)
          return Effect.void
        })
    }
    const exit = yield* provide(withTimeout(tool, tool.handler(decoded.right)), callCtx).pipe(
      Effect.ensuring(Effect.sync(() => (isOpen = false))),
      withSpan(`Tool.${tool.name}`, { toolUseId: use.id }),
      Effect.onInterrupt(() =>
        ctx.emit((c) => makeEvent(RunEvent.ToolInterrupted, c, { toolUseId: use.id, tool: tool.name }))
      ),
      Effect.exit
    )
    const flushed = Exit.isSuccess(exit)
      ? yield* Effect.exit(Effect.forEach(buffer, ctx.stageWrite, { discard: true }))
      : Exit.void
    if (Exit.isFailure(flushed)) return yield* failed(describeError(Cause.squash(flushed.cause)))
    if (Exit.isSuccess(exit)) {
      const { content, output } = yield* encodeOutput(tool, exit.value)
      yield* setStatus(cell, use.id, { _tag: "Succeeded", content })
      yield* ctx.emit((c) => makeEvent(RunEvent.ToolSucceeded, c, { toolUseId: use.id, tool: tool.name, output }))
      return { type: "tool_result", toolUseId: use.id, content, isError: false } satisfies ToolResultBlock
    }
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "Some") return yield* failed(describeError(failure.value))
    return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
  }) as Effect.Effect<ToolResultBlock, never, R>
}
