import { Cause, Option, Schema } from "effect"
import { CancelReason } from "@tether/core"
import type { RunOutcome } from "@tether/core"
import { scrub } from "./clientText.js"

const encodeReason = Schema.encodeSync(CancelReason.CancelReason)

/** The tag of a failed run's error: its typed error's `_tag`, or `Defect` when it died of a bug. */
const errorTagOf = (cause: Cause.Cause<{ readonly _tag: string }>): string =>
  Option.match(Cause.failureOption(cause), { onNone: () => "Defect", onSome: (error) => error._tag })

/**
 * A run outcome as JSON: what ended it, what it cost, what it committed or rolled back. A failure is its error's tag
 * and message, without stack frames or server paths (the server's log has the whole cause).
 */
export const outcome = (outcome: RunOutcome.RunOutcome): Record<string, unknown> => {
  switch (outcome._tag) {
    case "Completed":
      return {
        _tag: outcome._tag,
        runId: outcome.runId,
        text: outcome.text,
        tokensUsed: outcome.tokensUsed,
        tally: outcome.tally,
        writesCommitted: outcome.writesCommitted
      }
    case "Cancelled":
      return {
        _tag: outcome._tag,
        runId: outcome.runId,
        reason: encodeReason(outcome.reason),
        reasonText: CancelReason.describe(outcome.reason),
        tokensUsed: outcome.tokensUsed,
        tokensEstimated: outcome.tokensEstimated,
        tally: outcome.tally,
        writesRolledBack: outcome.writesRolledBack,
        compensationsRun: outcome.compensationsRun
      }
    case "Failed":
      return {
        _tag: outcome._tag,
        runId: outcome.runId,
        errorTag: errorTagOf(outcome.cause),
        error: scrub(outcome.error),
        tokensUsed: outcome.tokensUsed,
        tally: outcome.tally,
        writesRolledBack: outcome.writesRolledBack,
        compensationsRun: outcome.compensationsRun
      }
  }
}
