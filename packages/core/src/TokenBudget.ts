/**
 * One token ledger for a whole run tree: sub-agents draw from their parent's.
 * Every model call reserves its input estimate plus `max_tokens` before it is
 * sent, with `max_tokens` clamped to what is left, so the ceiling holds even
 * where no cancel signal gets through. Streams report usage as they go; a
 * stream that pushes the tree over the ceiling trips the ledger, and the run
 * is cancelled with `BudgetExceeded`.
 *
 * What a provider reports is not trusted blindly. A figure that is negative, not a number or beyond a safe
 * integer is ignored (an estimate stands in), a fraction is rounded up, and a later, smaller figure never lowers an
 * earlier one: `used` never goes down. Output is never counted below what was streamed (about four characters a
 * token), and a call that answered without reporting its input is charged its input estimate. A call cancelled
 * before its model answered costs nothing. `Tally` says which part of `used` the provider reported and which part
 * Tether estimated.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TokenBudget } from "@tether/core"
 *
 * const program = Effect.gen(function* () {
 *   const ledger = yield* TokenBudget.make({ ceiling: 10_000 })
 *   const reservation = yield* ledger.reserve({ estimatedInput: 500, maxTokens: 4096 })
 *   yield* reservation.settle({ inputTokens: 480, outputTokens: 120, streamedTokens: 130 })
 *   return yield* ledger.snapshot
 *   // { used: 610, tally: { reportedInput: 480, reportedOutput: 120, estimated: 10, used: 610 }, ... }
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
  /** Tokens the tree has used so far. */
  used: Schema.Number,
  /** Tokens held by calls in flight beyond what they have used so far. */
  reservedInFlight: Schema.Number,
  /** The least the refused call needed: its input estimate and one output token. */
  needed: Schema.Number
}) {}

/**
 * Where the tokens a run tree used come from: `used = reportedInput + reportedOutput + estimated`. `estimated`
 * counts what Tether had to estimate because the provider did not report it: output streamed beyond the reported
 * figure (an aborted stream never reports its final usage), and the input of a call that answered without a
 * usable input figure.
 *
 * @since 0.1.0
 */
export const Tally = Schema.Struct({
  used: Schema.Number,
  reportedInput: Schema.Number,
  reportedOutput: Schema.Number,
  estimated: Schema.Number
})

/** @since 0.1.0 */
export type Tally = typeof Tally.Type

/**
 * A tally of nothing used.
 *
 * @since 0.1.0
 */
export const emptyTally: Tally = { used: 0, reportedInput: 0, reportedOutput: 0, estimated: 0 }

/**
 * The ledger's totals. `reserved = settled + released` once nothing is in
 * flight (`released` is negative for a call that used more than it reserved).
 *
 * @since 0.1.0
 */
export interface Snapshot {
  readonly ceiling: number
  /** Every reservation ever made, settled or not. */
  readonly reserved: number
  readonly settled: number
  readonly released: number
  /** Reservations not yet settled. */
  readonly inFlight: number
  /** Tokens held by the calls in flight beyond what they have used so far (not part of `used`). */
  readonly reservedInFlight: number
  /** Settled tokens plus what in-flight calls have used so far; never goes down. */
  readonly used: number
  /** `used`, by where each figure comes from. */
  readonly tally: Tally
  /** True when some of `used` was estimated (`tally.estimated > 0`). */
  readonly estimated: boolean
  /** True once usage crossed the ceiling. */
  readonly exceeded: boolean
}

/**
 * What one call has shown so far, cumulative for the call. Each figure may be left out; the provider's figures
 * are checked as the module says.
 *
 * @since 0.1.0
 */
export interface Usage {
  /** Input tokens, as the provider reported them. */
  readonly inputTokens?: number | undefined
  /** Output tokens, as the provider reported them. */
  readonly outputTokens?: number | undefined
  /** Output estimated from the deltas streamed so far. */
  readonly streamedTokens?: number | undefined
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
  /** Records usage so far (the model answered); trips the ledger when the tree crosses the ceiling. */
  readonly observe: (usage: Usage) => Effect.Effect<void>
  /**
   * `observe` for synchronous callers (a provider's event callback): records usage and returns the snapshot
   * when this very call tripped the ledger, leaving the caller to act on it; `onExceeded` is not run.
   */
  readonly unsafeObserve: (usage: Usage) => Snapshot | undefined
  /**
   * Ends the reservation with its last usage (a call that never observed and reports nothing costs nothing).
   * Idempotent.
   */
  readonly settle: (usage: Usage) => Effect.Effect<void>
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

/** A provider's figure as a token count, or `undefined` when it is not one (negative, not a number, absurd). */
const tokenCount = (figure: number | undefined): number | undefined => {
  if (figure === undefined || !(figure >= 0)) return undefined
  const count = Math.ceil(figure)
  return count <= Number.MAX_SAFE_INTEGER ? count : undefined
}

/** One call's usage as the ledger counts it: each part only grows. */
interface Counted {
  reportedInput: number
  reportedOutput: number
  /** The input charged as estimated: the call's input estimate once it answered without an input figure. */
  inputFloor: number
  streamed: number
  hasInputFigure: boolean
  hasAnswered: boolean
}

const usedOf = (c: Counted): number => Math.max(c.reportedInput, c.inputFloor) + Math.max(c.reportedOutput, c.streamed)

const estimatedOf = (c: Counted): number =>
  Math.max(0, c.inputFloor - c.reportedInput) + Math.max(0, c.streamed - c.reportedOutput)

/** Folds one observation into `c`; `isAnswer` says the model answered (from then on its input is owed). */
const count = (c: Counted, usage: Usage, estimatedInput: number, isAnswer: boolean): void => {
  const input = tokenCount(usage.inputTokens)
  const output = tokenCount(usage.outputTokens)
  const streamed = tokenCount(usage.streamedTokens)
  if (input !== undefined) {
    c.reportedInput = Math.max(c.reportedInput, input)
    c.hasInputFigure = true
  }
  if (output !== undefined) c.reportedOutput = Math.max(c.reportedOutput, output)
  if (streamed !== undefined) c.streamed = Math.max(c.streamed, streamed)
  c.hasAnswered = c.hasAnswered || isAnswer || input !== undefined || output !== undefined || c.streamed > 0
  if (c.hasAnswered && !c.hasInputFigure) c.inputFloor = estimatedInput
}

/**
 * A ledger's state and what it does: a class, so that a run's ledger (one per live run) shares its functions with
 * every other. Plain mutable state: every operation runs synchronously to its end, so none can interleave. The
 * functions of `Ledger` are built when read, so that they work detached.
 */
class LedgerState implements Ledger {
  reserved = 0
  settled = 0
  released = 0
  readonly settledTally = { reportedInput: 0, reportedOutput: 0, estimated: 0 }
  exceeded = false
  /** The unsettled reservations, in the order they were made. */
  readonly inFlight: Array<Grant> = []

  constructor(
    readonly ceiling: number,
    readonly onExceeded: ((snapshot: Snapshot) => Effect.Effect<void>) | undefined
  ) {}

  usedNow(): number {
    let used = this.settled
    for (const grant of this.inFlight) used += grant.usage
    return used
  }

  /** What the ledger cannot hand out: settled tokens plus, per call in flight, the larger of claim and usage. */
  committedNow(): number {
    let committed = this.settled
    for (const grant of this.inFlight) committed += Math.max(grant.amount, grant.usage)
    return committed
  }

  snapshotNow(): Snapshot {
    let { estimated, reportedInput, reportedOutput } = this.settledTally
    for (const { counted } of this.inFlight) {
      reportedInput += counted.reportedInput
      reportedOutput += counted.reportedOutput
      estimated += estimatedOf(counted)
    }
    const used = this.usedNow()
    return {
      ceiling: this.ceiling,
      reserved: this.reserved,
      settled: this.settled,
      released: this.released,
      inFlight: this.inFlight.length,
      reservedInFlight: this.committedNow() - used,
      used,
      tally: { used, reportedInput, reportedOutput, estimated },
      estimated: estimated > 0,
      exceeded: this.exceeded
    }
  }

  reserveNow(estimatedInput: number, maxTokens: number): Effect.Effect<Reservation, BudgetExhaustedError> {
    const clamped = Math.min(maxTokens, this.ceiling - this.committedNow() - estimatedInput)
    if (clamped < 1) {
      const used = this.usedNow()
      return Effect.fail(
        new BudgetExhaustedError({
          ceiling: this.ceiling,
          used,
          reservedInFlight: this.committedNow() - used,
          needed: estimatedInput + 1
        })
      )
    }
    const grant = new Grant(this, estimatedInput, clamped)
    this.inFlight.push(grant)
    this.reserved += grant.amount
    return Effect.succeed(grant)
  }

  get reserve(): Ledger["reserve"] {
    return ({ estimatedInput, maxTokens }) => Effect.suspend(() => this.reserveNow(estimatedInput, maxTokens))
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => this.snapshotNow())
  }

  get unsafeSnapshot(): () => Snapshot {
    return () => this.snapshotNow()
  }
}

/** One unsettled reservation: what it claimed and what it has used so far. */
class Grant implements Reservation {
  readonly amount: number
  /** What the call has used so far, as the ledger counts it. */
  usage = 0
  isSettled = false
  readonly counted: Counted = {
    reportedInput: 0,
    reportedOutput: 0,
    inputFloor: 0,
    streamed: 0,
    hasInputFigure: false,
    hasAnswered: false
  }

  constructor(
    readonly ledger: LedgerState,
    readonly estimatedInput: number,
    readonly maxTokens: number
  ) {
    this.amount = estimatedInput + maxTokens
  }

  observeNow(usage: Usage): Snapshot | undefined {
    if (this.isSettled) return undefined
    const ledger = this.ledger
    count(this.counted, usage, this.estimatedInput, true)
    this.usage = usedOf(this.counted)
    if (ledger.exceeded || ledger.usedNow() <= ledger.ceiling) return undefined
    ledger.exceeded = true
    return ledger.snapshotNow()
  }

  settleNow(usage: Usage): void {
    if (this.isSettled) return
    this.isSettled = true
    const { counted, ledger } = this
    count(counted, usage, this.estimatedInput, false)
    const actual = usedOf(counted)
    const at = ledger.inFlight.indexOf(this)
    if (at >= 0) ledger.inFlight.splice(at, 1)
    ledger.settled += actual
    ledger.released += this.amount - actual
    ledger.settledTally.reportedInput += counted.reportedInput
    ledger.settledTally.reportedOutput += counted.reportedOutput
    ledger.settledTally.estimated += estimatedOf(counted)
  }

  get unsafeObserve(): Reservation["unsafeObserve"] {
    return (usage) => this.observeNow(usage)
  }

  get observe(): Reservation["observe"] {
    return (usage) =>
      Effect.suspend(() => {
        const tripped = this.observeNow(usage)
        const onExceeded = this.ledger.onExceeded
        return tripped !== undefined && onExceeded ? onExceeded(tripped) : Effect.void
      })
  }

  get settle(): Reservation["settle"] {
    return (usage) => Effect.sync(() => this.settleNow(usage))
  }
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
  Effect.sync(() => new LedgerState(options.ceiling ?? Number.POSITIVE_INFINITY, options.onExceeded))
