import { Effect } from "effect"
import * as TokenBudget from "../TokenBudget.js"

/** A sub-agent's ledger: its own ceiling inside its parent's, every call counted in both. */
export interface SubLedger extends TokenBudget.Ledger {
  /** True once the sub-agent's own ceiling was reached (not its parent's). */
  readonly isExhausted: () => boolean
}

/**
 * A ledger of `ceiling` inside `parent`. A call reserves in both (its `max_tokens` clamped by both), reports its
 * usage to both and settles in both. When the sub-agent's own ceiling is crossed (or too little is left of it to
 * start a call: then with the `refusal`) `onExceeded` runs, synchronously, once; a crossing of the parent's
 * ceiling is reported as the parent's ledger reports it, so that it cancels the whole run.
 */
export const make = (
  parent: TokenBudget.Ledger,
  ceiling: number,
  onExceeded: (snapshot: TokenBudget.Snapshot, refusal?: TokenBudget.BudgetExhaustedError) => void
): Effect.Effect<SubLedger> =>
  Effect.map(TokenBudget.make({ ceiling }), (own) => {
    let isExhausted = false
    const exhaust = (refusal?: TokenBudget.BudgetExhaustedError) => {
      if (isExhausted) return
      isExhausted = true
      onExceeded(own.unsafeSnapshot(), refusal)
    }
    const reserve: TokenBudget.Ledger["reserve"] = (request) =>
      Effect.gen(function* () {
        const mine = yield* own.reserve(request).pipe(Effect.tapError((refusal) => Effect.sync(() => exhaust(refusal))))
        const theirs = yield* parent
          .reserve({ estimatedInput: request.estimatedInput, maxTokens: mine.maxTokens })
          .pipe(Effect.tapError(() => mine.settle({})))
        const unsafeObserve = (usage: TokenBudget.Usage) => {
          const tripped = theirs.unsafeObserve(usage)
          if (mine.unsafeObserve(usage) !== undefined) exhaust()
          return tripped
        }
        return {
          maxTokens: theirs.maxTokens,
          amount: theirs.amount,
          unsafeObserve,
          observe: (usage) =>
            Effect.zipRight(
              theirs.observe(usage),
              Effect.sync(() => {
                if (mine.unsafeObserve(usage) !== undefined) exhaust()
              })
            ),
          settle: (usage) => Effect.zipRight(theirs.settle(usage), mine.settle(usage))
        } satisfies TokenBudget.Reservation
      })
    return {
      ceiling,
      reserve,
      snapshot: own.snapshot,
      unsafeSnapshot: own.unsafeSnapshot,
      isExhausted: () => isExhausted
    }
  })
