import { Schema } from "effect"
import { CancelReason, RunOutcome } from "@tether/core"

const encodeReason = Schema.encodeSync(CancelReason.CancelReason)

/** A run outcome as JSON: what ended it, what it cost, what it committed or rolled back. */
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
        error: outcome.error,
        tokensUsed: outcome.tokensUsed,
        tally: outcome.tally,
        writesRolledBack: outcome.writesRolledBack,
        compensationsRun: outcome.compensationsRun
      }
  }
}
