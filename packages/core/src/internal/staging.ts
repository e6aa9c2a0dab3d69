import { Effect, Option } from "effect"
import * as RunEvent from "../RunEvent.js"
import * as StagedWrites from "../StagedWrites.js"
import type { RunContext } from "./context.js"
import { make as makeEvent } from "./event.js"

/** The refusal of a write that arrives after the run stopped (from work that ignored the cancel). */
export const runEnded = () =>
  new StagedWrites.StagedWriteError({ operation: "stage", message: "the run's transaction has already ended" })

/** Stages `write` where `ctx` stages (the run's transaction, or a tool call's buffer), counts it and reports it. */
export const stage = (ctx: RunContext, write: StagedWrites.Write) =>
  ctx.stageWrite(write).pipe(
    Effect.zipRight(
      Effect.sync(() => {
        ctx.undo.staged++
      })
    ),
    Effect.zipRight(ctx.emit((c) => makeEvent(RunEvent.WriteStaged, c, { description: StagedWrites.describe(write) })))
  )

/** The run-level `stageWrite`: into the run's transaction while the run accepts writes. */
export const stageInto =
  (transaction: Option.Option<StagedWrites.Transaction>, acceptsWrites: () => boolean) =>
  (write: StagedWrites.Write): Effect.Effect<void, StagedWrites.StagedWriteError> =>
    !acceptsWrites()
      ? Effect.fail(runEnded())
      : Option.match(transaction, {
          onNone: () =>
            Effect.fail(
              new StagedWrites.StagedWriteError({
                operation: "stage",
                message: "no StagedWrites service was provided to the run"
              })
            ),
          onSome: (tx) => tx.stage(write)
        })
