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
import { Effect, Ref, Schema } from "effect"

/** The ledger has too little left to start a model call. @since 0.1.0 */
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

/** Usage a call reports as it streams; figures are cumulative for the call. @since 0.1.0 */
export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/** One model call's claim on the ledger. @since 0.1.0 */
export interface Reservation {
  /** `max_tokens` to send: the caller's, clamped to what the ledger had left. */
  readonly maxTokens: number
  /** Input estimate plus `maxTokens`. */
  readonly amount: number
  /** Records usage so far; trips the ledger when the tree crosses the ceiling. */
  readonly observe: (usage: Usage) => Effect.Effect<void>
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
}

interface State {
  readonly reserved: number
  readonly settled: number
  readonly released: number
  /** Unsettled reservations: what each claimed and what it has used so far. */
  readonly inFlight: ReadonlyMap<number, { readonly claim: number; readonly usage: number }>
  readonly estimated: boolean
  readonly exceeded: boolean
}

const sum = (values: Iterable<number>): number => {
  let total = 0
  for (const value of values) total += value
  return total
}

const usedOf = (state: State): number => state.settled + sum(Array.from(state.inFlight.values(), (c) => c.usage))

/** What the ledger cannot hand out: settled tokens plus, per call in flight, the larger of claim and usage. */
const committedOf = (state: State): number =>
  state.settled + sum(Array.from(state.inFlight.values(), (c) => Math.max(c.claim, c.usage)))

/**
 * Makes a ledger. `onExceeded` runs once, the first time usage crosses the
 * ceiling; the run uses it to cancel itself with `BudgetExceeded`.
 *
 * @since 0.1.0
 */
export const make = (options: {
  readonly ceiling?: number | undefined
  readonly onExceeded?: ((snapshot: Snapshot) => Effect.Effect<void>) | undefined
}): Effect.Effect<Ledger> =>
  Effect.gen(function* () {
    const ceiling = options.ceiling ?? Number.POSITIVE_INFINITY
    const state = yield* Ref.make<State>({
      reserved: 0,
      settled: 0,
      released: 0,
      inFlight: new Map(),
      estimated: false,
      exceeded: false
    })
    let nextId = 0
    const toSnapshot = (s: State): Snapshot => ({
      ceiling,
      reserved: s.reserved,
      settled: s.settled,
      released: s.released,
      inFlight: s.inFlight.size,
      used: usedOf(s),
      estimated: s.estimated,
      exceeded: s.exceeded
    })
    const snapshot = Effect.map(Ref.get(state), toSnapshot)

    const reserve: Ledger["reserve"] = ({ estimatedInput, maxTokens }) =>
      Effect.gen(function* () {
        const id = nextId++
        const granted = yield* Ref.modify(state, (s): [number | undefined, State] => {
          const clamped = Math.min(maxTokens, ceiling - committedOf(s) - estimatedInput)
          if (clamped < 1) return [undefined, s]
          const inFlight = new Map(s.inFlight)
          inFlight.set(id, { claim: estimatedInput + clamped, usage: 0 })
          return [clamped, { ...s, reserved: s.reserved + estimatedInput + clamped, inFlight }]
        })
        if (granted === undefined) {
          const used = yield* Effect.map(Ref.get(state), usedOf)
          return yield* new BudgetExhaustedError({ ceiling, used, needed: estimatedInput + 1 })
        }
        const amount = estimatedInput + granted
        let settled = false
        const observe = (usage: Usage) =>
          Ref.modify(state, (s): [Snapshot | undefined, State] => {
            if (!s.inFlight.has(id)) return [undefined, s]
            const inFlight = new Map(s.inFlight)
            inFlight.set(id, { claim: amount, usage: usage.inputTokens + usage.outputTokens })
            const next = { ...s, inFlight }
            if (s.exceeded || usedOf(next) <= ceiling) return [undefined, next]
            const tripped = { ...next, exceeded: true }
            return [toSnapshot(tripped), tripped]
          }).pipe(
            Effect.flatMap((tripped) =>
              tripped !== undefined && options.onExceeded ? options.onExceeded(tripped) : Effect.void
            )
          )
        const settle = (usage: Usage & { readonly estimated: boolean }) =>
          Effect.suspend(() => {
            if (settled) return Effect.void
            settled = true
            const actual = usage.inputTokens + usage.outputTokens
            return Ref.update(state, (s) => {
              const inFlight = new Map(s.inFlight)
              inFlight.delete(id)
              return {
                ...s,
                inFlight,
                settled: s.settled + actual,
                released: s.released + amount - actual,
                estimated: s.estimated || usage.estimated
              }
            })
          })
        const reservation: Reservation = { maxTokens: granted, amount, observe, settle }
        return reservation
      })

    return { ceiling, reserve, snapshot } satisfies Ledger
  })
