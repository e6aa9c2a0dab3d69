import { getEventListeners } from "node:events"
import { afterAll, describe, expect, it } from "vitest"
import { Layer, ManagedRuntime } from "effect"
import { Agent, AgentRun, CancelReason, StagedWrites } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const runtime = ManagedRuntime.make(
  Layer.mergeAll(
    ScriptedModel.layer([ScriptedModel.text("abcdefghij", { chunks: 10, delay: "20 millis" })]),
    StagedWrites.layerMemory
  )
)
afterAll(() => runtime.dispose())

describe("AgentRun.runPromise (the Promise facade)", () => {
  it("aborting the signal cancels the run with UserAbort", async () => {
    const controller = new AbortController()
    const pending = AgentRun.runPromise(Agent.make({ name: "a" }), "hi", {
      runtime: await runtime.runtime(),
      signal: controller.signal
    })
    setTimeout(() => controller.abort(), 50)
    const outcome = await pending
    expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "UserAbort" } })
  })

  it("a CancelReason given to abort() is the recorded reason", async () => {
    const controller = new AbortController()
    controller.abort(new CancelReason.Timeout({ millis: 10 }))
    const outcome = await AgentRun.runPromise(Agent.make({ name: "a" }), "hi", {
      runtime: await runtime.runtime(),
      signal: controller.signal
    })
    expect(outcome).toMatchObject({ _tag: "Cancelled", reason: { _tag: "Timeout", millis: 10 } })
  })

  it("repeated runs on one signal leave no listener behind", async () => {
    const controller = new AbortController()
    const warnings: Array<string> = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on("warning", onWarning)
    const rt = await runtime.runtime()
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, () =>
        AgentRun.runPromise(Agent.make({ name: "a" }), "hi", { runtime: rt, signal: controller.signal })
      )
    )
    process.off("warning", onWarning)
    expect(outcomes.every((outcome) => outcome._tag === "Completed")).toBe(true)
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0)
    expect(warnings).not.toContain("MaxListenersExceededWarning")
  })
})
