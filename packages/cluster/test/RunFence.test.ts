import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { Message, RunRegistry, StagedWrites } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import { Effect, Either, Exit, Option } from "effect"
import { RunFence } from "../src/index.js"
import { client, describePostgres, dropTables, uniquePrefix } from "./support/Postgres.js"

/** A fresh prefix for one test; its tables are dropped when the test ends. */
const withPrefix = <A, E>(body: (prefix: string) => Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.gen(function* () {
    const prefix = uniquePrefix()
    yield* dropTables(prefix)
    return yield* body(prefix)
  }).pipe(Effect.scoped, Effect.provide(client))

/** Staged writes on PostgreSQL whose commit is fenced by `fence` (or not, when `fence` is undefined). */
const stagedWrites = (prefix: string, fence: RunFence.Service | undefined) =>
  SqlStagedWrites.make({
    recordsTable: `${prefix}_records`,
    beforeCommit: fence?.checkCommit,
    commitRetry: undefined
  })

const stageAndCommit = (staged: StagedWrites.Service, runId: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const tx = yield* staged.begin(runId)
      yield* tx.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
      yield* tx.stage(StagedWrites.upsert("orders", "o-2", { total: 4 }))
      return yield* Effect.exit(tx.commit)
    })
  )

const ordersCommitted = (prefix: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM ${sql(`${prefix}_records`)}`
    return Number(rows[0]!.n)
  })

describePostgres("RunFence", () => {
  it.live(
    "a run's checkpoint: the claim's first one, then its owner's while its claim holds; a revoked claim's row keeps the last",
    () =>
      withPrefix((prefix) =>
        Effect.gen(function* () {
          const fence = yield* RunFence.make({ prefix, owner: "replica-a" })
          const other = yield* RunFence.make({ prefix, owner: "replica-b" })
          const history = [Message.user("earlier"), Message.assistant("noted")]
          yield* fence.claim({
            sessionId: "s-1",
            runId: "r-1",
            transcript: { historyLength: history.length, messages: [Message.user("hello")] }
          })
          expect(yield* fence.transcriptOf("r-1")).toEqual(
            Option.some({ historyLength: 2, messages: [Message.user("hello")] })
          )
          const more = [Message.user("hello"), Message.assistant("hi there")]
          expect(yield* fence.checkpoint("r-1", more)).toBe(true)
          expect(yield* fence.transcriptOf("r-1")).toEqual(Option.some({ historyLength: 2, messages: more }))
          // Only the claim's owner checkpoints; once revoked, its checkpoints are refused and the last one stays.
          expect(yield* other.checkpoint("r-1", [Message.user("not mine")])).toBe(false)
          yield* other.revoke("r-1", "LostReplica")
          expect(yield* fence.checkpoint("r-1", [...more, Message.user("too late")])).toBe(false)
          expect(yield* fence.transcriptOf("r-1")).toEqual(Option.some({ historyLength: 2, messages: more }))
          // A run claimed without a transcript has none.
          yield* fence.claim({ sessionId: "s-2", runId: "r-2" })
          expect(yield* fence.transcriptOf("r-2")).toEqual(Option.none())
        })
      )
  )

  it.live("a claim is idempotent by run id: the same run id claimed again is the existing run, never a new one", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const fence = yield* RunFence.make({ prefix, owner: "replica-a" })
        const first = yield* fence.claim({ sessionId: "s-1", runId: "r-1" })
        const again = yield* fence.claim({ sessionId: "s-1", runId: "r-1" })
        const other = yield* RunFence.make({ prefix, owner: "replica-b" })
        const fromOther = yield* other.claim({ sessionId: "s-1", runId: "r-1" })
        expect(first).toEqual(RunFence.ClaimResult.Claimed({ epoch: 1 }))
        expect(again._tag).toBe("Existing")
        expect(fromOther._tag).toBe("Existing")
        if (fromOther._tag === "Existing") {
          expect(fromOther.row).toMatchObject({ runId: "r-1", sessionId: "s-1", owner: "replica-a", status: "running" })
        }
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT run_id FROM ${sql(fence.table)}`
        expect(rows.length).toBe(1)
        // The same run id for another session is refused.
        const taken = yield* Effect.either(fence.claim({ sessionId: "s-2", runId: "r-1" }))
        expect(Either.getLeft(taken)).toEqual(
          Option.some(new RunFence.RunIdTakenError({ runId: "r-1", sessionId: "s-1" }))
        )
      })
    )
  )

  it.live("two concurrent claims of different runs for one session: exactly one wins, the other is SessionBusy", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const a = yield* RunFence.make({ prefix, owner: "replica-a" })
        const b = yield* RunFence.make({ prefix, owner: "replica-b" })
        for (let round = 0; round < 10; round++) {
          const sessionId = `s-${round}`
          const [fromA, fromB] = yield* Effect.all(
            [
              Effect.either(a.claim({ sessionId, runId: `a-${round}` })),
              Effect.either(b.claim({ sessionId, runId: `b-${round}` }))
            ],
            { concurrency: 2 }
          )
          const winners = [fromA, fromB].filter(Either.isRight)
          const losers = [fromA, fromB].filter(Either.isLeft)
          expect(winners.length).toBe(1)
          expect(winners[0]!.right._tag).toBe("Claimed")
          const winner = Either.isRight(fromA) ? `a-${round}` : `b-${round}`
          expect(losers[0]!.left).toEqual(new RunRegistry.SessionBusyError({ sessionId, runId: winner }))
        }
        // Once the session's run ended, the session takes a new run.
        yield* a.end("a-0", "Completed")
        yield* b.end("b-0", "Completed")
        const next = yield* b.claim({ sessionId: "s-0", runId: "c-0" })
        expect(next._tag).toBe("Claimed")
      })
    )
  )

  it.live("a commit after the run's epoch was bumped rolls back with CommitFencedError and applies nothing", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const zombie = yield* RunFence.make({ prefix, owner: "replica-a" })
        const sweeper = yield* RunFence.make({ prefix, owner: "replica-b" })
        const staged = yield* stagedWrites(prefix, zombie)
        yield* zombie.claim({ sessionId: "s-1", runId: "r-1" })
        yield* Effect.sleep("20 millis")
        // replica-a is presumed dead: the sweep ends its run and bumps the epoch.
        const swept = yield* sweeper.sweep(0)
        expect(swept.map((row) => row.runId)).toEqual(["r-1"])
        const exit = yield* stageAndCommit(staged, "r-1")
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) {
          const error = Option.getOrThrow(
            Exit.causeOption(exit).pipe(
              Option.flatMap((c) => (c._tag === "Fail" ? Option.some(c.error) : Option.none()))
            )
          )
          expect(error._tag).toBe("CommitFencedError")
        }
        expect(yield* ordersCommitted(prefix)).toBe(0)
        const row = Option.getOrThrow(yield* sweeper.get("r-1"))
        expect(row).toMatchObject({ status: "ended", reason: "LostReplica", epoch: 2, owner: "replica-a" })
      })
    )
  )

  it.live("without the fence the same zombie commit lands (what the fence prevents)", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const zombie = yield* RunFence.make({ prefix, owner: "replica-a" })
        const staged = yield* stagedWrites(prefix, undefined)
        yield* zombie.claim({ sessionId: "s-1", runId: "r-1" })
        yield* Effect.sleep("20 millis")
        yield* zombie.sweep(0)
        const exit = yield* stageAndCommit(staged, "r-1")
        expect(exit).toEqual(Exit.succeed(2))
        expect(yield* ordersCommitted(prefix)).toBe(2)
      })
    )
  )

  it.live("a commit of a run still claimed lands and marks the row committed", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const fence = yield* RunFence.make({ prefix, owner: "replica-a" })
        const staged = yield* stagedWrites(prefix, fence)
        yield* fence.claim({ sessionId: "s-1", runId: "r-1" })
        const exit = yield* stageAndCommit(staged, "r-1")
        expect(exit).toEqual(Exit.succeed(2))
        expect(yield* ordersCommitted(prefix)).toBe(2)
        expect(Option.getOrThrow(yield* fence.get("r-1")).status).toBe("committed")
        // A replica that never claimed the run cannot commit it.
        const other = yield* RunFence.make({ prefix, owner: "replica-b" })
        const stranger = yield* stagedWrites(prefix, other)
        const refused = yield* stageAndCommit(stranger, "r-1")
        expect(Exit.isFailure(refused)).toBe(true)
        expect(yield* ordersCommitted(prefix)).toBe(2)
      })
    )
  )

  it.live("a run whose owner stopped heartbeating is ended LostReplica by the sweep, and never claimed again", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const alive = yield* RunFence.make({ prefix, owner: "replica-a" })
        const dead = yield* RunFence.make({ prefix, owner: "replica-b" })
        yield* alive.claim({ sessionId: "s-a", runId: "r-a" })
        yield* dead.claim({ sessionId: "s-b", runId: "r-b" })
        yield* Effect.sleep("400 millis")
        expect(yield* alive.heartbeat).toEqual([])
        const swept = yield* alive.sweep("200 millis")
        expect(swept.map((row) => [row.runId, row.owner, row.status])).toEqual([["r-b", "replica-b", "running"]])
        expect(Option.getOrThrow(yield* alive.get("r-b"))).toMatchObject({
          status: "ended",
          reason: "LostReplica",
          epoch: 2
        })
        expect(Option.getOrThrow(yield* alive.get("r-a")).status).toBe("running")
        // The lost owner learns at its next heartbeat that the run is no longer its own.
        expect(yield* dead.heartbeat).toEqual([{ runId: "r-b", sessionId: "s-b", reason: "LostReplica" }])
        // A re-sent start of the swept run is the existing (ended) run: it is never restarted.
        const resent = yield* alive.claim({ sessionId: "s-b", runId: "r-b" })
        expect(resent._tag).toBe("Existing")
        // The session takes a new run.
        expect((yield* alive.claim({ sessionId: "s-b", runId: "r-b2" }))._tag).toBe("Claimed")
        // A second sweep finds nothing more.
        expect(yield* alive.sweep("200 millis")).toEqual([])
      })
    )
  )

  it.live("a caller lease renewed by its caller's heartbeat holds; once renewals stop, callersLost names the run", () =>
    withPrefix((prefix) =>
      Effect.gen(function* () {
        const owner = yield* RunFence.make({ prefix, owner: "replica-a" })
        const caller = yield* RunFence.make({ prefix, owner: "replica-b" })
        yield* owner.claim({ sessionId: "s-1", runId: "r-1", caller: caller.owner })
        yield* owner.claim({ sessionId: "s-2", runId: "r-2" }) // no caller: never lost
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* caller.leaseAsCaller("r-1")
            for (let i = 0; i < 3; i++) {
              yield* Effect.sleep("300 millis")
              yield* caller.heartbeat
              expect(yield* owner.callersLost("500 millis")).toEqual([])
            }
          })
        )
        // The lease was released (the caller stopped following the run): its next heartbeats do not renew it.
        yield* Effect.sleep("300 millis")
        yield* caller.heartbeat
        yield* Effect.sleep("300 millis")
        expect(yield* owner.callersLost("500 millis")).toEqual([
          { runId: "r-1", sessionId: "s-1", caller: "replica-b" }
        ])
        // Another owner's runs are not its to cancel.
        expect(yield* caller.callersLost("500 millis")).toEqual([])
        // An ended run is no longer named.
        yield* owner.end("r-1", "ClientDisconnected")
        expect(yield* owner.callersLost("500 millis")).toEqual([])
      })
    )
  )
})
