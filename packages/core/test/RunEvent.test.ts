import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Equal, FastCheck, Schema } from "effect"
import { RunEvent } from "@tether/core"
import { make } from "../src/internal/event.js"

describe("RunEvent", () => {
  it("events a run builds without the Schema constructor equal the constructor's, for every event class", () => {
    for (const Class of RunEvent.RunEvent.members) {
      FastCheck.assert(
        FastCheck.property(Arbitrary.make(Class as Schema.Schema<RunEvent.RunEvent, any>), (sample) => {
          const { _tag, agent, runId, seq, ...fields } = sample
          const made = make(Class, { runId, seq, agent }, fields as never)
          const constructed = new Class({ runId, seq, agent, ...fields } as never)
          expect(made).toBeInstanceOf(Class)
          expect(Object.keys(made)).toEqual(Object.keys(constructed))
          expect(made).toEqual(constructed)
          // (Equal says NaN differs from itself: what matters is that it says of `made` what it says of a twin.)
          expect(Equal.equals(made, constructed)).toBe(
            Equal.equals(new Class({ runId, seq, agent, ...fields } as never), constructed)
          )
          expect(Schema.encodeSync(RunEvent.RunEvent)(made)).toEqual(Schema.encodeSync(RunEvent.RunEvent)(constructed))
        }),
        { numRuns: 20 }
      )
    }
  })
})
