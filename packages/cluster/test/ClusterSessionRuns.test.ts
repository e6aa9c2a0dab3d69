import { expect, it } from "@effect/vitest"
import { Agent, AgentRun, CancelReason, SessionStore, StagedWrites, Tool } from "@tether/core"
import { Auth, SessionRuns } from "@tether/http"
import { SqlStagedWrites } from "@tether/sql"
import { ScriptedModel } from "@tether/testing"
import { Chunk, Effect, Layer, Option, Schedule, Schema, Stream } from "effect"
import { ClusterSessionRuns, SessionEntity } from "../src/index.js"
import { describePostgres } from "./support/Postgres.js"
import { agent, replicaWith } from "./support/Replica.js"

/** `ClusterSessionRuns` on one replica (`TestRunner.layer`), a memory session store, PostgreSQL run rows. */
const services = (script: ScriptedModel.Script) =>
  replicaWith(
    script,
    Layer.mergeAll(SessionEntity.layer({ agent }), ClusterSessionRuns.layer()).pipe(
      Layer.provideMerge(SessionStore.layerMemory())
    )
  )

const alice = Auth.CallerId.make("alice")
const bob = Auth.CallerId.make("bob")

describePostgres("ClusterSessionRuns (SessionRuns through the session entity)", () => {
  it.live("start, then cancel through SessionRuns: Cancelled(UserAbort), the write rolled back, the status Ended", () =>
    Effect.gen(function* () {
      const runs = yield* SessionRuns.SessionRuns
      const started = yield* runs.start({ sessionId: "s-1", caller: alice, agent, message: "Note: buy milk" })
      yield* started.events.pipe(
        Stream.takeUntil((event) => event._tag === "WriteStaged"),
        Stream.runDrain
      )
      const running = yield* runs.status({ sessionId: "s-1", caller: alice })
      expect(running).toMatchObject({ _tag: "Running", runId: started.runId })
      const cancelled = yield* runs.cancel({ sessionId: "s-1", caller: alice, reason: new CancelReason.UserAbort() })
      expect(cancelled).toMatchObject({ sessionId: "s-1", runId: started.runId, wasRunning: true })
      expect(cancelled.outcome._tag).toBe("Cancelled")
      if (cancelled.outcome._tag === "Cancelled") {
        expect(cancelled.outcome.reason).toEqual(new CancelReason.UserAbort())
        expect(cancelled.outcome.writesRolledBack).toBe(1)
      }
      expect(yield* SqlStagedWrites.read("notes", "n-1")).toEqual(Option.none())
      const ended = yield* runs.status({ sessionId: "s-1", caller: alice })
      expect(ended).toMatchObject({ _tag: "Ended", runId: started.runId })
      // The session belongs to alice.
      expect((yield* Effect.flip(runs.status({ sessionId: "s-1", caller: bob })))._tag).toBe("Forbidden")
      const refused = yield* Effect.flip(runs.start({ sessionId: "s-1", caller: bob, agent, message: "mine?" }))
      expect(refused._tag).toBe("Forbidden")
    }).pipe(
      Effect.provide(
        services([
          [ScriptedModel.toolUse("save_note", { text: "buy milk" })],
          ScriptedModel.text("Saved, and here is a long answer.", { chunks: 20, delay: "500 millis" })
        ])
      )
    )
  )

  it.live(
    "a second start while the run goes is SessionBusy; a completed run's transcript is the next run's history",
    () =>
      Effect.gen(function* () {
        const runs = yield* SessionRuns.SessionRuns
        const first = yield* runs.start({ sessionId: "s-1", caller: alice, agent, message: "first" })
        const busy = yield* Effect.flip(runs.start({ sessionId: "s-1", caller: alice, agent, message: "too soon" }))
        expect(busy).toMatchObject({ _tag: "SessionBusy", runId: first.runId })
        const events = Chunk.toReadonlyArray(yield* Stream.runCollect(first.events))
        expect(events[events.length - 1]?._tag).toBe("RunCompleted")
        // The follower saves the transcript once the run ended.
        const store = yield* SessionStore.SessionStore
        yield* store
          .get("s-1")
          .pipe(
            Effect.map(Option.filter((session) => session.transcript.length === 2)),
            Effect.flatMap(Effect.orElseFail(() => "not saved yet")),
            Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")))
          )
        yield* runs.start({ sessionId: "s-1", caller: alice, agent, message: "second" })
        const attached = yield* runs.attach({ sessionId: "s-1", caller: alice, after: Option.none() })
        yield* Stream.runDrain(attached.events)
        const recorder = yield* ScriptedModel.ScriptedModel
        const requests = yield* recorder.requests
        expect(requests.length).toBe(2)
        expect(requests[1]!.messages.length).toBe(3) // first, its answer, second
      }).pipe(
        Effect.provide(
          services([ScriptedModel.text("One.", { chunks: 2, delay: "200 millis" }), ScriptedModel.text("Two.")])
        )
      )
  )

  it.live("a tool reads the caller the run acts for in Auth.CurrentCaller, as in one process", () => {
    // Stages a record keyed by the caller the run acts for.
    const recordCaller = Tool.make({
      name: "record_caller",
      description: "Records who asked",
      input: Schema.Struct({}),
      output: Schema.String,
      handler: () =>
        Effect.flatMap(Auth.CurrentCaller, (caller) =>
          Effect.as(AgentRun.stage(StagedWrites.upsert("callers", caller, { caller })), caller)
        )
    })
    const whoAsked = Agent.make({ name: "who-asked", tools: [recordCaller] })
    return Effect.gen(function* () {
      const runs = yield* SessionRuns.SessionRuns
      const started = yield* runs.start({ sessionId: "s-1", caller: bob, agent: whoAsked, message: "who am I?" })
      const events = Chunk.toReadonlyArray(yield* Stream.runCollect(started.events))
      expect(events[events.length - 1]?._tag).toBe("RunCompleted")
      expect(yield* SqlStagedWrites.read("callers", "bob")).toEqual(Option.some({ caller: "bob" }))
    }).pipe(
      Effect.provide(
        replicaWith(
          [[ScriptedModel.toolUse("record_caller", {})], ScriptedModel.text("You are bob.")],
          Layer.mergeAll(SessionEntity.layer({ agent: whoAsked }), ClusterSessionRuns.layer()).pipe(
            Layer.provideMerge(SessionStore.layerMemory())
          )
        )
      )
    )
  })

  it.live("a start past the owner's maxLiveRuns is Overloaded (the routes' 503 with Retry-After)", () =>
    Effect.gen(function* () {
      const runs = yield* SessionRuns.SessionRuns
      const first = yield* runs.start({ sessionId: "s-1", caller: alice, agent, message: "long" })
      const refused = yield* Effect.flip(runs.start({ sessionId: "s-2", caller: alice, agent, message: "also" }))
      expect(refused).toMatchObject({ _tag: "Overloaded", limit: 1, retryAfterSeconds: 1 })
      yield* first.cancel(new CancelReason.UserAbort())
    }).pipe(
      Effect.provide(
        replicaWith(
          [ScriptedModel.text("A long answer.", { chunks: 10, delay: "500 millis" })],
          Layer.mergeAll(SessionEntity.layer({ agent, maxLiveRuns: 1 }), ClusterSessionRuns.layer()).pipe(
            Layer.provideMerge(SessionStore.layerMemory())
          )
        )
      )
    )
  )
})
