import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { CancelReason, Message, RunRegistry, SessionStore, StagedWrites } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import { ScriptedModel } from "@tether/testing"
import { Chunk, Effect, Exit, Option, Schedule, Stream } from "effect"
import { RunFence, SessionEntity } from "../src/index.js"
import { describePostgres } from "./support/Postgres.js"
import { replica } from "./support/Replica.js"

/** The run row of `runId` once it is ended (its watcher records the end just after the outcome). */
const endedRow = (runId: string) =>
  Effect.flatMap(RunFence.RunFence, (fence) =>
    fence
      .get(runId)
      .pipe(
        Effect.map(Option.filter((row) => row.status === "ended")),
        Effect.flatMap(Effect.orElseFail(() => "not ended yet")),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")))
      )
  )

const alice = SessionStore.CallerId.make("alice")

const session = (sessionId: string) => Effect.map(SessionEntity.Session.client, (make) => make(sessionId))

describePostgres("SessionEntity (TestRunner, PostgreSQL run rows)", () => {
  it.live("a Start then a Stop ends the run Cancelled(UserAbort), its staged write rolled back and its row ended", () =>
    Effect.gen(function* () {
      const s1 = yield* session("s-1")
      const started = yield* s1.Start({ owner: alice, runId: "r-1", message: "Note: buy milk" })
      expect(started).toMatchObject({ sessionId: "s-1", runId: "r-1", isResent: false })
      // Wait until the tool staged its write, then press Stop.
      yield* s1.Attach({}).pipe(
        Stream.takeUntil((event) => event._tag === "WriteStaged"),
        Stream.runDrain
      )
      const stopped = yield* s1.Stop({ reason: new CancelReason.UserAbort() })
      const found = Option.getOrThrow(stopped)
      expect(found.wasRunning).toBe(true)
      const ended = Option.getOrThrow(found.ended)
      expect(ended._tag).toBe("Cancelled")
      if (ended._tag === "Cancelled") {
        expect(ended.reason).toEqual(new CancelReason.UserAbort())
        expect(ended.writesRolledBack).toBe(1)
      }
      expect(yield* SqlStagedWrites.read("notes", "n-1")).toEqual(Option.none())
      expect(yield* endedRow("r-1")).toMatchObject({ status: "ended", reason: "UserAbort" })
      const status = yield* s1.Status()
      expect(status).toMatchObject({ _tag: "Ended", runId: "r-1", reason: "UserAbort" })
    }).pipe(
      Effect.provide(
        replica([
          [ScriptedModel.toolUse("save_note", { text: "buy milk" })],
          ScriptedModel.text("Saved, and here is a long answer.", { chunks: 20, delay: "500 millis" })
        ])
      )
    )
  )

  it.live("a re-sent Start with the same run id returns the same run, and the model sees one request", () =>
    Effect.gen(function* () {
      const s1 = yield* session("s-1")
      const [first, second] = yield* Effect.all(
        [
          s1.Start({ owner: alice, runId: "r-1", message: "hi" }),
          s1.Start({ owner: alice, runId: "r-1", message: "hi" })
        ],
        { concurrency: 2 }
      )
      expect([first.isResent, second.isResent].sort()).toEqual([false, true])
      const events = yield* Stream.runCollect(s1.Attach({ runId: "r-1" }))
      expect(Chunk.last(events).pipe(Option.map((event) => event._tag))).toEqual(Option.some("RunCompleted"))
      // After the run ended, the same start again: still the same run, never a second execution.
      const late = yield* s1.Start({ owner: alice, runId: "r-1", message: "hi" })
      expect(late.isResent).toBe(true)
      const recorder = yield* ScriptedModel.ScriptedModel
      expect((yield* recorder.requests).length).toBe(1)
      // Another run of the same session, once the first ended, runs.
      yield* endedRow("r-1")
      const next = yield* s1.Start({ owner: alice, runId: "r-2", message: "again" })
      expect(next.isResent).toBe(false)
    }).pipe(
      Effect.provide(
        replica([ScriptedModel.text("Hello!", { chunks: 3, delay: "20 millis" }), ScriptedModel.text("Again.")])
      )
    )
  )

  it.live(
    "a replica runs at most maxLiveRuns runs: a Start past them fails with ReplicaFullError, claims nothing, and a place comes back when a run ends",
    () =>
      Effect.gen(function* () {
        const fence = yield* RunFence.RunFence
        const [s1, s2, s3] = [yield* session("s-1"), yield* session("s-2"), yield* session("s-3")]
        yield* s1.Start({ owner: alice, runId: "r-1", message: "hi" })
        yield* s2.Start({ owner: alice, runId: "r-2", message: "hi" })
        const refused = yield* Effect.flip(s3.Start({ owner: alice, runId: "r-3", message: "hi" }))
        expect(refused).toMatchObject({ _tag: "ReplicaFullError", sessionId: "s-3", limit: 2 })
        expect(yield* fence.get("r-3")).toEqual(Option.none())
        // A refused start and a re-sent one hold no place: stopping one run frees exactly one.
        expect((yield* s1.Start({ owner: alice, runId: "r-1", message: "hi" })).isResent).toBe(true)
        yield* s1.Stop({ reason: new CancelReason.UserAbort() })
        yield* endedRow("r-1")
        expect((yield* s3.Start({ owner: alice, runId: "r-3", message: "hi" })).isResent).toBe(false)
        const again = yield* Effect.flip(s1.Start({ owner: alice, runId: "r-4", message: "hi" }))
        expect(again._tag).toBe("ReplicaFullError")
        yield* s2.Stop({ reason: new CancelReason.UserAbort() })
        yield* s3.Stop({ reason: new CancelReason.UserAbort() })
      }).pipe(
        Effect.provide(
          replica([ScriptedModel.text("A long answer.", { chunks: 10, delay: "500 millis" })], { maxLiveRuns: 2 })
        )
      )
  )

  it.live("a Start of another run while the session's run is going fails with SessionBusyError", () =>
    Effect.gen(function* () {
      const s1 = yield* session("s-1")
      yield* s1.Start({ owner: alice, runId: "r-1", message: "hi" })
      const refused = yield* Effect.flip(s1.Start({ owner: alice, runId: "r-2", message: "hi again" }))
      expect(refused).toEqual(new RunRegistry.SessionBusyError({ sessionId: "s-1", runId: "r-1" }))
      const recorder = yield* ScriptedModel.ScriptedModel
      expect((yield* recorder.requests).length).toBe(1)
      yield* s1.Stop({ reason: new CancelReason.UserAbort() })
    }).pipe(Effect.provide(replica([ScriptedModel.text("A long answer.", { chunks: 10, delay: "500 millis" })])))
  )

  it.live("Attach after sequence number n streams exactly the events after n", () =>
    Effect.gen(function* () {
      const s1 = yield* session("s-1")
      yield* s1.Start({ owner: alice, runId: "r-1", message: "hi" })
      const all = Chunk.toReadonlyArray(yield* Stream.runCollect(s1.Attach({})))
      expect(all.length).toBeGreaterThan(5)
      for (const index of [0, 2, all.length - 2, all.length - 1]) {
        const n = all[index]!.seq
        const after = Chunk.toReadonlyArray(yield* Stream.runCollect(s1.Attach({ after: n })))
        expect(after).toEqual(all.filter((event) => event.seq > n))
      }
      const missing = yield* Effect.flip(Stream.runCollect(s1.Attach({ runId: "r-unknown" })))
      expect(missing._tag).toBe("NoRunError")
    }).pipe(
      Effect.provide(replica([ScriptedModel.text("One two three four five.", { chunks: 5, delay: "10 millis" })]))
    )
  )

  it.live(
    "a run whose claim is taken away (swept) is cancelled LostReplica at the next heartbeat and commits nothing",
    () =>
      Effect.gen(function* () {
        const s1 = yield* session("s-1")
        yield* s1.Start({ owner: alice, runId: "r-1", message: "Note: buy milk" })
        yield* s1.Attach({}).pipe(
          Stream.takeUntil((event) => event._tag === "WriteStaged"),
          Stream.runDrain
        )
        // Another replica's sweep presumes this one lost (a bound of 0 ends every run not ended).
        const fence = yield* RunFence.RunFence
        const sql = yield* SqlClient.SqlClient
        const other = yield* RunFence.make({ prefix: fence.table.replace(/_runs$/, ""), owner: "replica-other" })
        expect((yield* other.sweep(0)).map((row) => row.runId)).toEqual(["r-1"])
        const events = Chunk.toReadonlyArray(yield* Stream.runCollect(s1.Attach({ runId: "r-1" })))
        const last = events[events.length - 1]!
        expect(last._tag).toBe("RunCancelled")
        if (last._tag === "RunCancelled")
          expect(last.reason).toEqual(new CancelReason.LostReplica({ owner: "replica-test" }))
        expect(yield* SqlStagedWrites.read("notes", "n-1")).toEqual(Option.none())
        const rows = yield* sql<{ status: string; reason: string }>`SELECT status, reason FROM ${sql(fence.table)}`
        expect(rows).toEqual([{ status: "ended", reason: "LostReplica" }])
      }).pipe(
        Effect.provide(
          replica([
            [ScriptedModel.toolUse("save_note", { text: "buy milk" })],
            ScriptedModel.text("Saved, and here is a long answer.", { chunks: 20, delay: "500 millis" })
          ])
        )
      )
  )
  it.live(
    "a Stop for a run going on a replica that no longer owns the session revokes it: it cannot commit, and its replica learns the Stop's reason",
    () =>
      Effect.gen(function* () {
        const fence = yield* RunFence.RunFence
        const prefix = fence.table.replace(/_runs$/, "")
        // replica-gone started r-x for s-1 and still runs it, but the session's entity is now on this replica.
        const gone = yield* RunFence.make({ prefix, owner: "replica-gone" })
        const goneWrites = yield* SqlStagedWrites.make({
          recordsTable: `${prefix}_records`,
          beforeCommit: gone.checkCommit
        })
        const history = [Message.user("earlier"), Message.assistant("noted")]
        yield* gone.claim({
          sessionId: "s-1",
          runId: "r-x",
          transcript: { historyLength: history.length, messages: [Message.user("note x")] }
        })
        const soFar = [Message.user("note x"), Message.assistant("Saving it")]
        expect(yield* gone.checkpoint("r-x", soFar)).toBe(true)
        const store = yield* SessionStore.SessionStore
        yield* store.save({ id: "s-1", owner: alice, disconnect: "cancel", transcript: history, runId: "r-x" })
        const s1 = yield* session("s-1")
        const stopped = Option.getOrThrow(yield* s1.Stop({ reason: new CancelReason.UserAbort() }))
        expect(stopped).toMatchObject({ runId: "r-x", wasRunning: true, ended: Option.none() })
        // The replica that revoked the run saved its last checkpoint as the session's transcript, after its history.
        expect(Option.getOrThrow(yield* store.get("s-1")).transcript).toEqual([...history, ...soFar])
        expect(Option.getOrThrow(yield* fence.get("r-x"))).toMatchObject({
          status: "ended",
          reason: "UserAbort",
          epoch: 2
        })
        // Its replica learns it at its next heartbeat (and cancels the run with UserAbort); its commit is refused.
        expect(yield* gone.heartbeat).toEqual([{ runId: "r-x", sessionId: "s-1", reason: "UserAbort" }])
        const refused = yield* Effect.scoped(
          Effect.gen(function* () {
            const tx = yield* goneWrites.begin("r-x")
            yield* tx.stage(StagedWrites.upsert("notes", "n-x", { text: "late" }))
            return yield* Effect.flip(tx.commit)
          })
        )
        expect(refused._tag).toBe("CommitFencedError")
        expect(yield* SqlStagedWrites.read("notes", "n-x")).toEqual(Option.none())
        // The session takes a new run here.
        expect((yield* s1.Start({ owner: alice, runId: "r-2", message: "hi" })).isResent).toBe(false)
        // (No heartbeat of this replica during the test: it would revoke r-x first, see the next test.)
      }).pipe(Effect.provide(replica([ScriptedModel.text("Hello.")], { heartbeatInterval: "1 hour" })))
  )
  it.live(
    "a run of another replica on a session whose shard this replica holds is revoked at this replica's next heartbeat (LostReplica): it cannot commit",
    () =>
      Effect.gen(function* () {
        const fence = yield* RunFence.RunFence
        const prefix = fence.table.replace(/_runs$/, "")
        // replica-gone started r-y for s-2 and still runs it, but the session's shard is now this replica's.
        const gone = yield* RunFence.make({ prefix, owner: "replica-gone" })
        yield* gone.claim({
          sessionId: "s-2",
          runId: "r-y",
          transcript: { historyLength: 0, messages: [Message.user("note y")] }
        })
        const store = yield* SessionStore.SessionStore
        yield* store.save({ id: "s-2", owner: alice, disconnect: "cancel", transcript: [], runId: "r-y" })
        const row = yield* fence.get("r-y").pipe(
          Effect.map(Option.getOrThrow),
          Effect.filterOrFail(
            (row) => row.status === "ended",
            () => "not revoked yet"
          ),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
        )
        expect(row).toMatchObject({ owner: "replica-gone", reason: "LostReplica", epoch: 2 })
        // Its transcript as far as it is known (the claim's checkpoint: the run's message) is the session's.
        const saved = yield* store.get("s-2").pipe(
          Effect.map((found) => Option.getOrThrow(found).transcript),
          Effect.filterOrFail(
            (transcript) => transcript.length > 0,
            () => "not saved yet"
          ),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
        )
        expect(saved).toEqual([Message.user("note y")])
        expect(yield* gone.heartbeat).toEqual([{ runId: "r-y", sessionId: "s-2", reason: "LostReplica" }])
        expect(Exit.isFailure(yield* Effect.exit(gone.checkCommit("r-y")))).toBe(true)
      }).pipe(Effect.provide(replica([ScriptedModel.text("Hello.")])))
  )
})
