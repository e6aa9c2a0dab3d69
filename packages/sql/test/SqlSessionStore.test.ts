import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import { Agent, RunRegistry } from "@tether/core"
import type { LanguageModel, Message } from "@tether/core"
import { SessionStore } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import { Effect, Either, Layer, Option, Schedule } from "effect"
import type { Scope } from "effect"
import { SqlSessionStore } from "../src/index.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"

const alice = SessionStore.CallerId.make("alice")
const bob = SessionStore.CallerId.make("bob")

const transcript: ReadonlyArray<Message.Message> = [
  { role: "user", content: [{ type: "text", text: "buy o-1, «quoted» 'text' \\ and emoji 🙂" }] },
  {
    role: "assistant",
    content: [{ type: "tool_use", id: "t-1", name: "place_order", input: { id: "o-1", n: [1, 2] } }]
  },
  { role: "user", content: [{ type: "tool_result", toolUseId: "t-1", content: "placed", isError: false }] },
  { role: "assistant", content: [{ type: "text", text: "done" }] }
]

const session = (
  id: string,
  owner: SessionStore.CallerId,
  extra: Partial<SessionStore.Session> = {}
): SessionStore.Session => ({
  id,
  owner,
  disconnect: "cancel",
  transcript: [],
  runId: undefined,
  ...extra
})

/** A store on the test database, in a table of the test's own. */
const makeStore = Effect.flatMap(TestNamespace, (ns) => SqlSessionStore.make({ sessionsTable: ns.table("sessions") }))

const agent = Agent.make({ name: "a" })
const model = ScriptedModel.layer(() => ScriptedModel.text("hello there", { chunks: 2, delay: "20 millis" }))

describeEachDatabase((db) => {
  const test = <A, E>(
    name: string,
    self: () => Effect.Effect<
      A,
      E,
      | Layer.Layer.Success<ReturnType<typeof db.layer>>
      | RunRegistry.RunRegistry
      | LanguageModel.LanguageModel
      | Scope.Scope
    >
  ) =>
    it.live(name, () =>
      Effect.scoped(self()).pipe(
        Effect.provide(Layer.mergeAll(RunRegistry.layer(), model).pipe(Layer.provideMerge(db.layer())))
      )
    )

  test("a session round-trips: owner, policy, run id and a transcript of every block kind", () =>
    Effect.gen(function* () {
      const store = yield* makeStore
      expect(yield* store.get("s-1")).toEqual(Option.none())
      const saved = session("s-1", alice, { disconnect: "detach", transcript, runId: "run-1" })
      yield* store.save(saved)
      yield* store.save(session("s-2", alice))
      yield* store.save(session("s-3", bob))
      expect(yield* store.get("s-1")).toEqual(Option.some(saved))
      expect(Option.getOrThrow(yield* store.get("s-2")).runId).toBeUndefined()
      expect((yield* store.ownedBy(alice)).map((s) => s.id)).toEqual(["s-1", "s-2"])
      // A save replaces the whole session, owner included.
      yield* store.save(session("s-2", bob, { transcript: transcript.slice(0, 1) }))
      expect((yield* store.ownedBy(alice)).map((s) => s.id)).toEqual(["s-1"])
      expect((yield* store.ownedBy(bob)).map((s) => s.id)).toEqual(["s-2", "s-3"])
      expect(Option.getOrThrow(yield* store.get("s-2")).transcript).toEqual(transcript.slice(0, 1))
    }))

  test("sessions are rows: a store built later on the same database finds them", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(Effect.flatMap(makeStore, (store) => store.save(session("kept", alice, { transcript }))))
      const later = yield* makeStore
      expect(Option.getOrThrow(yield* later.get("kept")).transcript).toEqual(transcript)
      const ns = yield* TestNamespace
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`SELECT id, owner FROM ${sql(ns.table("sessions"))}`
      expect(rows).toEqual([{ id: "kept", owner: "alice" }])
    }))

  test("a followed run's transcript becomes the session's; a run that is no longer the latest changes nothing", () =>
    Effect.gen(function* () {
      const store = yield* makeStore
      const registry = yield* RunRegistry.RunRegistry
      const waitForTranscript = (sessionId: string, length: number) =>
        store.get(sessionId).pipe(
          Effect.map((s) => Option.getOrThrow(s).transcript),
          Effect.filterOrFail((t) => t.length === length),
          Effect.retry(Schedule.spaced("10 millis")),
          Effect.timeout("5 seconds")
        )

      const run = yield* registry.start("s-f", agent, "hi")
      yield* store.save(session("s-f", alice, { runId: run.id }))
      yield* store.follow("s-f", run)
      const outcome = yield* run.outcome
      expect(yield* waitForTranscript("s-f", 2)).toEqual(outcome.transcript)

      // "old" ends after the session moved on to another run id: its transcript is not written.
      const old = yield* registry.start("s-old", agent, "hi")
      yield* store.save(session("s-old", alice, { runId: old.id }))
      yield* store.follow("s-old", old)
      yield* store.save(session("s-old", alice, { runId: "a-newer-run", transcript: transcript.slice(0, 1) }))
      yield* old.outcome
      // The follower's write (or its absence) is observable once a later follower of the same store has written.
      const marker = yield* registry.start("s-marker", agent, "hi")
      yield* store.save(session("s-marker", alice, { runId: marker.id }))
      yield* store.follow("s-marker", marker)
      yield* waitForTranscript("s-marker", 2)
      expect(Option.getOrThrow(yield* store.get("s-old")).transcript).toEqual(transcript.slice(0, 1))
    }))

  test("a save of a long transcript plus one message inserts one message row and rewrites nothing", () =>
    Effect.gen(function* () {
      const store = yield* makeStore
      const ns = yield* TestNamespace
      const sql = yield* SqlClient.SqlClient
      const long = Array.from({ length: 50 }, () => transcript).flat()
      yield* store.save(session("long", alice, { transcript: long, runId: "run-1" }))
      const next: Message.Message = { role: "user", content: [{ type: "text", text: "one more" }] }
      // The save between two counts, in one transaction: the rows written by this connection (SQLite), or by this
      // backend and not yet reported, per table and kind (PostgreSQL).
      const messagesTable = `${ns.table("sessions")}_messages`
      const counts =
        ns.dialect === "sqlite"
          ? Effect.map(sql`SELECT total_changes() AS n`, ([row]) => ({ rows: Number(row!["n"]), messages: [0, 0, 0] }))
          : Effect.map(
              sql`SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables
                WHERE relname IN (${ns.table("sessions")}, ${messagesTable})`,
              (stats) => {
                const of = (name: string) => {
                  const row = stats.find((r) => r["relname"] === name)
                  return [row?.["n_tup_ins"], row?.["n_tup_upd"], row?.["n_tup_del"]].map((n) => Number(n ?? 0))
                }
                const messages = of(messagesTable)
                const sessions = of(ns.table("sessions"))
                return { rows: [...messages, ...sessions].reduce((a, b) => a + b, 0), messages }
              }
            )
      const written = yield* sql.withTransaction(
        Effect.gen(function* () {
          const before = yield* counts
          yield* store.save(session("long", alice, { transcript: [...long, next], runId: "run-1" }))
          const after = yield* counts
          return { rows: after.rows - before.rows, messages: after.messages.map((n, i) => n - before.messages[i]!) }
        })
      )
      if (ns.dialect === "pg") expect(written.messages).toEqual([1, 0, 0])
      // The new message's row and the session's (its count and digest), whatever the transcript's length.
      expect(written.rows).toBe(2)
      expect(Option.getOrThrow(yield* store.get("long")).transcript).toEqual([...long, next])
    }))

  test("a transcript rewritten shorter or different replaces the stored one; reads see exactly what was saved", () =>
    Effect.gen(function* () {
      const store = yield* makeStore
      const other: Message.Message = { role: "user", content: [{ type: "text", text: "a summary of it all" }] }
      const saved = (t: ReadonlyArray<Message.Message>) =>
        Effect.zipRight(
          store.save(session("r", alice, { transcript: t })),
          Effect.map(store.get("r"), (s) => Option.getOrThrow(s).transcript)
        )
      expect(yield* saved(transcript)).toEqual(transcript)
      expect(yield* saved(transcript.slice(0, 2))).toEqual(transcript.slice(0, 2))
      expect(yield* saved([other, ...transcript.slice(1)])).toEqual([other, ...transcript.slice(1)])
      expect(yield* saved([other, ...transcript.slice(1), other])).toEqual([other, ...transcript.slice(1), other])
      expect(yield* saved([])).toEqual([])
      expect(yield* saved(transcript)).toEqual(transcript)
      // The same length, one message changed in the middle.
      const changed = [transcript[0]!, other, ...transcript.slice(2)]
      expect(yield* saved(changed)).toEqual(changed)
      expect((yield* store.ownedBy(alice)).map((s) => s.transcript)).toEqual([changed])
    }))

  test("a row that does not decode, or a table that is gone, is a SessionStoreError, not a defect", () =>
    Effect.gen(function* () {
      const store = yield* makeStore
      const ns = yield* TestNamespace
      const sql = yield* SqlClient.SqlClient
      const table = ns.table("sessions")
      yield* store.save(session("bad", alice, { transcript }))
      yield* sql`UPDATE ${sql(`${table}_messages`)} SET message = ${"not json"} WHERE session_id = ${"bad"}`
      const read = yield* Effect.either(store.get("bad"))
      expect(Either.isLeft(read) && read.left._tag).toBe("SessionStoreError")
      expect(Either.isLeft(yield* Effect.either(store.ownedBy(alice)))).toBe(true)

      yield* sql`DROP TABLE ${sql(table)}`
      const failures: ReadonlyArray<Either.Either<unknown, SessionStore.SessionStoreError>> = [
        yield* Effect.either(store.get("bad")),
        yield* Effect.either(store.save(session("new", alice))),
        yield* Effect.either(store.ownedBy(alice))
      ]
      for (const failed of failures) {
        expect(Either.isLeft(failed) && failed.left).toMatchObject({ _tag: "SessionStoreError" })
      }
    }))
})
