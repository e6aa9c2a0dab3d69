/**
 * The run lifecycle's transitions, one at a time (`src/internal/lifecycle.ts`). The property tests prove the same
 * invariants on whole runs; these show each transition on its own.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { CancelReason, TokenBudget } from "@tether/core"
import type { RunOutcome } from "@tether/core"
import * as Lifecycle from "../src/internal/lifecycle.js"

const userAbort = new CancelReason.UserAbort()
const timeout = new CancelReason.Timeout({ millis: 10 })
const completed: RunOutcome.RunOutcome = {
  _tag: "Completed",
  runId: "r",
  text: "",
  transcript: [],
  tokensUsed: 0,
  tally: TokenBudget.emptyTally,
  writesCommitted: 0
}

/** A real fiber to stand for the body. */
const aBody = Effect.runSync(Effect.fork(Effect.never))

const running = Lifecycle.bodyForked(Lifecycle.starting, aBody).state

describe("run lifecycle", () => {
  it("starting -> running when the body forks; a cancel while starting is remembered and stops the body at its fork", () => {
    expect(running._tag).toBe("Running")
    const remembered = Lifecycle.requestCancel(Lifecycle.starting, userAbort)
    expect(remembered).toEqual({ state: { _tag: "Starting", reason: userAbort }, stop: false })
    const forked = Lifecycle.bodyForked(remembered.state, aBody)
    expect(forked.stop).toBe(true)
    expect(forked.state).toMatchObject({ _tag: "Ending", reason: userAbort, hasBodyCompleted: false })
  })

  it("running -> ending(reason) on a cancel, which asks for the stop once; the first reason wins", () => {
    const cancelled = Lifecycle.requestCancel(running, userAbort)
    expect(cancelled.stop).toBe(true)
    expect(Lifecycle.reasonOf(cancelled.state)).toBe(userAbort)
    const again = Lifecycle.requestCancel(cancelled.state, timeout)
    expect(again.stop).toBe(false)
    expect(Lifecycle.reasonOf(again.state)).toBe(userAbort)
    // Also while starting: the first reason recorded is the one applied.
    const twice = Lifecycle.requestCancel(Lifecycle.requestCancel(Lifecycle.starting, timeout).state, userAbort)
    expect(Lifecycle.reasonOf(twice.state)).toBe(timeout)
  })

  it("running -> ending without a reason when the body ends by itself; a cancel then is too late", () => {
    const ended = Lifecycle.bodyEnded(running, true)
    expect(ended).toMatchObject({ stop: false, state: { _tag: "Ending", reason: undefined, hasBodyCompleted: true } })
    const late = Lifecycle.requestCancel(ended.state, userAbort)
    expect(late.stop).toBe(false)
    expect(Lifecycle.reasonOf(late.state)).toBeUndefined()
  })

  it("writes are accepted while starting and running, after a completed body, and never once stopped or failed", () => {
    expect(Lifecycle.acceptsWrites(Lifecycle.starting)).toBe(true)
    expect(Lifecycle.acceptsWrites(running)).toBe(true)
    expect(Lifecycle.acceptsWrites(Lifecycle.bodyEnded(running, true).state)).toBe(true)
    expect(Lifecycle.acceptsWrites(Lifecycle.bodyEnded(running, false).state)).toBe(false)
    expect(Lifecycle.acceptsWrites(Lifecycle.requestCancel(running, userAbort).state)).toBe(false)
  })

  it("the outcome is decided once: ended has no way out", () => {
    const decided = Lifecycle.decide(Lifecycle.bodyEnded(running, true).state, completed)
    expect(decided.state).toEqual({ _tag: "Ended", outcome: completed })
    const other: RunOutcome.RunOutcome = { ...completed, text: "another" }
    expect(Lifecycle.decide(decided.state, other).state).toBe(decided.state)
    expect(Lifecycle.requestCancel(decided.state, userAbort)).toEqual({ state: decided.state, stop: false })
    expect(Lifecycle.bodyForked(decided.state, aBody).state).toBe(decided.state)
    expect(Lifecycle.bodyEnded(decided.state, false).state).toBe(decided.state)
    expect(Lifecycle.acceptsWrites(decided.state)).toBe(false)
  })

  it("the body's fiber is known from its fork until the outcome", () => {
    expect(Lifecycle.bodyOf(Lifecycle.starting)).toBeUndefined()
    expect(Lifecycle.bodyOf(running)).toBe(aBody)
    expect(Lifecycle.bodyOf(Lifecycle.requestCancel(running, userAbort).state)).toBe(aBody)
    expect(Lifecycle.bodyOf(Lifecycle.decide(running, completed).state)).toBeUndefined()
    Effect.runFork(Fiber.interrupt(aBody))
  })
})
