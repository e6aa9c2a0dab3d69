import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Equal, FastCheck, Schema } from "effect"
import { CancelReason } from "@tether/core"

describe("CancelReason", () => {
  it("every reason round-trips through its Schema, the ones without fields built without validation included", () => {
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(CancelReason.CancelReason), (reason) => {
        const encoded = Schema.encodeSync(CancelReason.CancelReason)(reason)
        const decoded = Schema.decodeUnknownSync(CancelReason.CancelReason)(encoded)
        expect(decoded).toBeInstanceOf(reason.constructor)
        expect(decoded).toEqual(reason)
        expect(CancelReason.describe(decoded)).toBe(CancelReason.describe(reason))
      }),
      { numRuns: 100 }
    )
    const stop = new CancelReason.UserAbort()
    expect({ ...stop }).toEqual({ _tag: "UserAbort" })
    expect(Equal.equals(stop, new CancelReason.UserAbort())).toBe(true)
    expect(CancelReason.decodeOption({ _tag: "Shutdown" })).toEqual(expect.objectContaining({ _tag: "Some" }))
    // Schema's own parser throws on this one (a tag without a usable toString): it is no reason all the same.
    expect(CancelReason.decodeOption({ _tag: { toString: 0 } })).toEqual(expect.objectContaining({ _tag: "None" }))
  })
})
