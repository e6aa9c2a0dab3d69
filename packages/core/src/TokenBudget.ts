/**
 * One token ledger for a whole run tree: sub-agents draw from their parent's.
 * Every model call reserves its input estimate plus `max_tokens` before it is
 * sent, with `max_tokens` clamped to what is left, so the ceiling holds even
 * where no cancel signal gets through. Streams report usage as they go; a
 * stream that pushes the tree over the ceiling trips the ledger, and the run
 * is cancelled with `BudgetExceeded`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "@tether/core"
 *
 * const program = Effect.gen(function* () {
 *   const ledger = yield* TokenBudget.make({ ceiling: 10_000 })
 *   const reservation = yield* ledger.reserve({ estimatedInput: 500, maxTokens: 4096 })
 *   yield* reservation.settle({ inputTokens: 480, outputTokens: 120, estimated: false })
 *   return yield* ledger.snapshot // { reserved: 4596, settled: 600, released: 3996, ... }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"

/**
 * The ledger has too little left to start a model call.
 *
 * @since 0.1.0
 */
export class BudgetExhaustedError extends Schema.TaggedError<BudgetExhaustedError>()("BudgetExhaustedError", {
  ceiling: Schema.Number,
  used: Schema.Number,
  needed: Schema.Number
}) {}

/**
 * The ledger's totals. `reserved = settled + released` once nothing is in
 * flight (`released` is negative for a call that used more than it reserved).
 *
 * @since 0.1.0
 */
export interface Snapshot {
  readonly ceiling: number
  readonly reserved: number
  readonly settled: number
  readonly released: number
  /** Reservations not yet settled. */
  readonly inFlight: number
  /** Settled tokens plus what in-flight calls have used so far. */
  readonly used: number
  /** True when some settled figure was estimated (an aborted stream never reports its final usage). */
  readonly estimated: boolean
  /** True once usage crossed the ceiling. */
  readonly exceeded: boolean
}

/**
 * Usage a call reports as it streams; figures are cumulative for the call.
 *
 * @since 0.1.0
 */
export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/**
 * One model call's claim on the ledger.
 *
 * @since 0.1.0
 */
export interface Reservation {
  /** `max_tokens` to send: the caller's, clamped to what the ledger had left. */
  readonly maxTokens: number
  /** Input estimate plus `maxTokens`. */
  readonly amount: number
  /** Records usage so far; trips the ledger when the tree crosses the ceiling. */
  readonly observe: (usage: Usage) => Effect.Effect<void>
  /**
   * `observe` for synchronous callers (a provider's event callback): records usage and returns the snapshot
   * when this very call tripped the ledger, leaving the caller to act on it; `onExceeded` is not run.
   */
  readonly unsafeObserve: (usage: Usage) => Snapshot | undefined
  /** Ends the reservation with its final (or estimated) usage. Idempotent. */
  readonly settle: (usage: Usage & { readonly estimated: boolean }) => Effect.Effect<void>
}

/** @since 0.1.0 */
export interface Ledger {
  readonly ceiling: number
  readonly reserve: (request: {
    readonly estimatedInput: number
    readonly maxTokens: number
  }) => Effect.Effect<Reservation, BudgetExhaustedError>
  readonly snapshot: Effect.Effect<Snapshot>
  /** `snapshot`, read synchronously. */
  readonly unsafeSnapshot: () => Snapshot
}

/** One unsettled reservation: what it claimed and what it has used so far. */
interface Claim {
  readonly claim: number
  usage: number
}

/**
 * Makes a ledger. `onExceeded` runs once, the first time usage crosses the
 * ceiling through `observe`; the run uses it to cancel itself with `BudgetExceeded`.
 *
 * @since 0.1.0
 */
export const make = (options: {
  readonly ceiling?: number | undefined
  readonly onExceeded?: ((snapshot: Snapshot) => Effect.Effect<void>) | undefined
}): Effect.Effect<Ledger> =>
  Effect.sync(() => {
    const ceiling = options.ceiling ?? Number.POSITIVE_INFINITY
    // Plain mutable state: every operation below runs synchronously to its end, so none can interleave.
    let reserved = 0
    let settled = 0
    let released = 0
    let estimated = false
    let exceeded = false
    const inFlight = new Map<number, Claim>()
    let nextId = 0
    const usedNow = () => {
      let used = settled
      for (const claim of inFlight.values()) used += claim.usage
      return used
    }
    /** What the ledger cannot hand out: settled tokens plus, per call in flight, the larger of claim and usage. */
    const committedNow = () => {
      let committed = settled
      for (const claim of inFlight.values()) committed += Math.max(claim.claim, claim.usage)
      return committed
    }
    const unsafeSnapshot = (): Snapshot => ({
      ceiling,
      reserved,
      settled,
      released,
      inFlight: inFlight.size,
      used: usedNow(),
      estimated,
      exceeded
    })

    const grant = (id: number, estimatedInput: number, maxTokens: number): Reservation | undefined => {
      const clamped = Math.min(maxTokens, ceiling - committedNow() - estimatedInput)
      if (clamped < 1) return undefined
      const amount = estimatedInput + clamped
      const claim: Claim = { claim: amount, usage: 0 }
      inFlight.set(id, claim)
      reserved += amount
      let isSettled = false
      const unsafeObserve = (usage: Usage): Snapshot | undefined => {
        if (isSettled) return undefined
        claim.usage = usage.inputTokens + usage.outputTokens
        if (exceeded || usedNow() <= ceiling) return undefined
        exceeded = true
        return unsafeSnapshot()
      }
      return {
        maxTokens: clamped,
        amount,
        unsafeObserve,
        observe: (usage) =>
          Effect.suspend(() => {
            const tripped = unsafeObserve(usage)
            return tripped !== undefined && options.onExceeded ? options.onExceeded(tripped) : Effect.void
          }),
        settle: (usage) =>
          Effect.sync(() => {
            if (isSettled) return
            isSettled = true
            const actual = usage.inputTokens + usage.outputTokens
            inFlight.delete(id)
            settled += actual
            released += amount - actual
            estimated = estimated || usage.estimated
          })
      }
    }

    const reserve: Ledger["reserve"] = ({ estimatedInput, maxTokens }) =>
      Effect.suspend(() => {
        const reservation = grant(nextId++, estimatedInput, maxTokens)
        return reservation !== undefined
          ? Effect.succeed(reservation)
          : Effect.fail(new BudgetExhaustedError({ ceiling, used: usedNow(), needed: estimatedInput + 1 }))
      })

    return { ceiling, reserve, snapshot: Effect.sync(unsafeSnapshot), unsafeSnapshot } satisfies Ledger
  })
