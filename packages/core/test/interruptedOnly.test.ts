import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Cause, FastCheck, FiberId, Schema } from "effect"
import { isInterruptedOnly } from "../src/internal/interruptedOnly.js"

describe("isInterruptedOnly", () => {
  it("tells of every cause what Cause.isInterruptedOnly tells", () => {
    const causes = Arbitrary.make(Schema.Cause({ error: Schema.String, defect: Schema.Unknown }))
    FastCheck.assert(
      FastCheck.property(causes, (cause) => {
        expect(isInterruptedOnly(cause)).toBe(Cause.isInterruptedOnly(cause))
      }),
      { numRuns: 500 }
    )
    expect(isInterruptedOnly(Cause.sequential(Cause.empty, Cause.interrupt(FiberId.none)))).toBe(true)
    expect(isInterruptedOnly(Cause.parallel(Cause.fail("x"), Cause.interrupt(FiberId.none)))).toBe(false)
  })
})
