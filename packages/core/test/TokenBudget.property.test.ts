import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { TokenBudget } from "@tether/core"

/** What a provider may report: nothing, honest counts, or anything a broken or hostile server could send. */
const figure = fc.oneof(
  fc.constant(undefined),
  fc.nat({ max: 400 }),
  fc.integer({ min: -1_000_000_000, max: 1_000_000_000 }),
  fc.constantFrom(-999_999_999, -1, 0.5, 1e300, 2 ** 60, Number.NaN, Infinity, -Infinity),
  fc.double()
)

/** One step of one call: a usage report with the output streamed so far, then maybe the end of the call. */
const step = fc.record({
  call: fc.nat({ max: 2 }),
  inputTokens: figure,
  outputTokens: figure,
  streamedMore: fc.nat({ max: 150 }),
  settles: fc.boolean()
})

const scenario = fc.record({
  ceiling: fc.integer({ min: 1, max: 5000 }),
  calls: fc.array(fc.record({ estimatedInput: fc.nat({ max: 500 }), maxTokens: fc.integer({ min: 1, max: 3000 }) }), {
    minLength: 1,
    maxLength: 3
  }),
  steps: fc.array(step, { maxLength: 40 })
})

const isCount = (n: number) => Number.isSafeInteger(n) && n >= 0

describe("TokenBudget (property)", () => {
  it.effect.prop(
    "for any usage reports (negative, huge, NaN, decreasing): used never goes down, counts what streamed, adds up, and the ceiling is crossed by one observation at most",
    [scenario],
    ([s]) =>
      Effect.gen(function* () {
        const ledger = yield* TokenBudget.make({ ceiling: s.ceiling })
        const calls: Array<{ reservation: TokenBudget.Reservation; streamed: number; isSettled: boolean }> = []
        for (const call of s.calls) {
          const reservation = yield* Effect.option(ledger.reserve(call))
          if (reservation._tag === "Some") calls.push({ reservation: reservation.value, streamed: 0, isSettled: false })
        }
        let used = ledger.unsafeSnapshot().used
        let streamedAndSettled = 0
        let trips = 0
        const check = () => {
          const snapshot = ledger.unsafeSnapshot()
          const { tally } = snapshot
          expect(snapshot.used).toBeGreaterThanOrEqual(used)
          for (const n of [snapshot.used, tally.reportedInput, tally.reportedOutput, tally.estimated]) {
            expect(isCount(n)).toBe(true)
          }
          expect(tally.used).toBe(snapshot.used)
          expect(tally.reportedInput + tally.reportedOutput + tally.estimated).toBe(snapshot.used)
          const streamed = calls.reduce((sum, call) => sum + (call.isSettled ? 0 : call.streamed), streamedAndSettled)
          expect(snapshot.used).toBeGreaterThanOrEqual(streamed)
          expect(snapshot.exceeded).toBe(trips > 0)
          used = snapshot.used
          return snapshot
        }
        for (const { call: index, inputTokens, outputTokens, settles, streamedMore } of s.steps) {
          const call = calls[index % calls.length]
          if (call === undefined || call.isSettled) continue
          call.streamed += streamedMore
          const usage = { inputTokens, outputTokens, streamedTokens: call.streamed }
          const before = used
          const tripped = call.reservation.unsafeObserve(usage)
          if (tripped !== undefined) trips++
          const after = check().used
          if (tripped !== undefined) {
            // The observation that tripped the ledger is the one that crossed the ceiling: before it, all was under.
            expect(before).toBeLessThanOrEqual(s.ceiling)
            expect(tripped.used).toBe(after)
          }
          expect(trips).toBeLessThanOrEqual(1)
          if (trips === 0) expect(after).toBeLessThanOrEqual(s.ceiling)
          if (settles) {
            yield* call.reservation.settle(usage)
            call.isSettled = true
            streamedAndSettled += call.streamed
            check()
          }
        }
        for (const call of calls) {
          if (!call.isSettled) {
            yield* call.reservation.settle({ streamedTokens: call.streamed })
            call.isSettled = true
            streamedAndSettled += call.streamed
          }
        }
        const end = check()
        expect(end.inFlight).toBe(0)
        expect(end.reservedInFlight).toBe(0)
        expect(end.reserved).toBe(end.settled + end.released)
      }),
    { fastCheck: { numRuns: 300 } }
  )
})
