import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, TestClock } from "effect"
import { Agent, RunRegistry, SessionStore, StagedWrites } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const agent = Agent.make({ name: "a" })
// Each run streams for 10 minutes (two chunks, 5 minutes apart).
const slowModel = ScriptedModel.layer(() => ScriptedModel.text("done", { chunks: 2, delay: "5 minutes" }))
const services = Layer.mergeAll(slowModel, StagedWrites.layerMemory, RunRegistry.layer({ retainEnded: "1 hour" }))

const alice = SessionStore.CallerId.make("alice")
const bob = SessionStore.CallerId.make("bob")

const session = (id: string, owner: SessionStore.CallerId, runId?: string): SessionStore.Session => ({
  id,
  owner,
  disconnect: "cancel",
  transcript: [],
  runId
})

describe("SessionStore.layerMemoryWith", () => {
  it.scoped("an idle session is kept retainIdle, then forgotten; one with a followed run going is not", () =>
    Effect.gen(function* () {
      const store = yield* SessionStore.makeMemory({ retainIdle: "3 minutes" })
      const registry = yield* RunRegistry.RunRegistry
      yield* store.save(session("idle", alice))
      const run = yield* registry.start("busy", agent, "hi")
      yield* store.save(session("busy", alice, run.id))
      yield* store.follow("busy", run)

      yield* TestClock.adjust("2 minutes")
      expect(Option.isSome(yield* store.get("idle"))).toBe(true)
      // 3 minutes idle: gone at the next sweep (every minute here).
      yield* TestClock.adjust("2 minutes")
      expect(yield* store.get("idle")).toEqual(Option.none())
      expect((yield* store.ownedBy(alice)).map((s) => s.id)).toEqual(["busy"])

      // The run ends at 10 minutes; its session stays until 3 minutes (and a sweep) after that.
      yield* TestClock.adjust("7 minutes")
      expect((yield* run.outcome)._tag).toBe("Completed")
      const ended = Option.getOrThrow(yield* store.get("busy"))
      expect(ended.transcript.length).toBe(2)
      yield* TestClock.adjust("1 minute")
      expect(Option.isSome(yield* store.get("busy"))).toBe(true)
      yield* TestClock.adjust("2 minutes")
      expect(yield* store.get("busy")).toEqual(Option.none())
      expect(yield* store.ownedBy(alice)).toEqual([])
    }).pipe(Effect.provide(services))
  )

  it.scoped("a save counts as activity; ownedBy follows a session to its new owner", () =>
    Effect.gen(function* () {
      const store = yield* SessionStore.makeMemory({ retainIdle: "3 minutes" })
      yield* store.save(session("s", alice))
      yield* TestClock.adjust("2 minutes")
      yield* store.save(session("s", bob))
      yield* TestClock.adjust("2 minutes")
      expect(Option.getOrThrow(yield* store.get("s")).owner).toBe(bob)
      expect(yield* store.ownedBy(alice)).toEqual([])
      expect((yield* store.ownedBy(bob)).map((s) => s.id)).toEqual(["s"])
      yield* TestClock.adjust("2 minutes")
      expect(yield* store.get("s")).toEqual(Option.none())
    })
  )

  it.scoped("by default every session is kept", () =>
    Effect.gen(function* () {
      const store = yield* SessionStore.makeMemory()
      yield* store.save(session("s", alice))
      yield* TestClock.adjust("30 days")
      expect(Option.isSome(yield* store.get("s"))).toBe(true)
      expect((yield* store.ownedBy(alice)).length).toBe(1)
    })
  )
})
