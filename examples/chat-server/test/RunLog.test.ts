import { describe, expect, it } from "@effect/vitest"
import { Cause } from "effect"
import { CancelReason, RunOutcome } from "@tether/core"
import * as RunLog from "../src/RunLog.js"

const { Cancelled, Completed, Failed } = RunOutcome.RunOutcome

describe("RunLog: the example's own lines", () => {
  it("a run's end says how it ended, why, what it cost and what became of its writes", () => {
    expect(
      RunLog.describeOutcome(
        Completed({
          runId: "r",
          text: "",
          transcript: [],
          tokensUsed: 2534,
          tally: { used: 2534, reportedInput: 2400, reportedOutput: 134, estimated: 0 },
          writesCommitted: 1
        })
      )
    ).toBe("completed · 2534 tokens · 1 write committed")
    expect(
      RunLog.describeOutcome(
        Cancelled({
          runId: "r",
          reason: new CancelReason.UserAbort(),
          transcript: [],
          tokensUsed: 812,
          tokensEstimated: true,
          tally: { used: 812, reportedInput: 790, reportedOutput: 10, estimated: 12 },
          writesRolledBack: 2,
          compensationsRun: 0
        })
      )
    ).toBe("cancelled: the user pressed Stop (UserAbort) · 812 tokens (12 estimated) · 2 writes rolled back")
    expect(
      RunLog.describeOutcome(
        Failed({
          runId: "r",
          cause: Cause.empty,
          error: "the model refused",
          transcript: [],
          tokensUsed: 10,
          tally: { used: 10, reportedInput: 10, reportedOutput: 0, estimated: 0 },
          writesRolledBack: 0,
          compensationsRun: 0
        })
      )
    ).toBe("failed: the model refused · 10 tokens · 0 writes rolled back")
  })

  it("the shutdown's line counts the runs it cancelled and the writes they rolled back", () => {
    expect(RunLog.describeShutdown(0, 0)).toBe("tether chat: shut down; no run was going")
    expect(RunLog.describeShutdown(2, 3)).toBe(
      "tether chat: shut down; 2 runs cancelled (Shutdown), 3 writes rolled back"
    )
  })
})
