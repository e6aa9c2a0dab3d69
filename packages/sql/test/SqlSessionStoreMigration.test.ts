import { SqlClient } from "@effect/sql"
import { expect, it } from "@effect/vitest"
import type { Message } from "@tether/core"
import { SessionStore } from "@tether/core"
import { Cause, Effect, Exit, Option } from "effect"
import { SqlSessionStore } from "../src/index.js"
import { describeEachDatabase, TestNamespace } from "./support/TestDatabase.js"

const text = (role: "user" | "assistant", words: string): Message.Message => ({
  role,
  content: [{ type: "text", text: words }]
})

/** Sessions as the first schema held them: one row each, the whole transcript a JSON document. */
const sessions = Array.from({ length: 12 }, (_, i) => ({
  id: `old-${i}`,
  owner: i % 3 === 0 ? "bob" : "alice",
  disconnect: i % 2 === 0 ? "cancel" : "detach",
  runId: i === 5 ? null : `run-${i}`,
  transcript: Array.from({ length: i * 3 }, (_, k) =>
    k % 3 === 1
      ? ({
          role: "assistant",
          content: [{ type: "tool_use", id: `t-${k}`, name: "place_order", input: { id: `o-${k}`, "«": "✓" } }]
        } as Message.Message)
      : text(k % 2 === 0 ? "user" : "assistant", `message ${k} of session ${i}: «quoted» 'text' \\ and 🙂`)
  )
}))

/** The DDL and the writes of the first schema, as @tether/sql 0.1.0 made them. */
const createOldSchema = (table: string) =>
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
      id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      disconnect TEXT NOT NULL,
      transcript TEXT NOT NULL,
      run_id TEXT,
      updated_at BIGINT NOT NULL
    )`
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${table}_owner`)} ON ${sql(table)} (owner)`
    for (const s of sessions) {
      yield* sql`INSERT INTO ${sql(table)} (id, owner, disconnect, transcript, run_id, updated_at)
        VALUES (${s.id}, ${s.owner}, ${s.disconnect}, ${JSON.stringify(s.transcript)}, ${s.runId}, ${Date.now()})
        ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, disconnect = excluded.disconnect,
          transcript = excluded.transcript, run_id = excluded.run_id, updated_at = excluded.updated_at`
    }
  })

const expected = (s: (typeof sessions)[number]): SessionStore.Session => ({
  id: s.id,
  owner: SessionStore.CallerId.make(s.owner),
  disconnect: s.disconnect as SessionStore.DisconnectPolicy,
  transcript: s.transcript,
  runId: s.runId ?? undefined
})

describeEachDatabase((db) => {
  it.live("a database of the first schema is migrated on start: every session and transcript reads back", () =>
    Effect.gen(function* () {
      const ns = yield* TestNamespace
      const sql = yield* SqlClient.SqlClient
      const table = ns.table("sessions")
      yield* createOldSchema(table)
      const store = yield* SqlSessionStore.make({ sessionsTable: table })
      for (const s of sessions) expect(yield* store.get(s.id)).toEqual(Option.some(expected(s)))
      const owned = (owner: string) => store.ownedBy(SessionStore.CallerId.make(owner))
      expect(yield* owned("alice")).toEqual(
        sessions
          .filter((s) => s.owner === "alice")
          .map(expected)
          .sort((a, b) => (a.id < b.id ? -1 : 1))
      )
      // The documents are gone from the sessions rows; the messages are rows.
      const columns = yield* ns.dialect === "sqlite"
        ? sql`SELECT name FROM pragma_table_info(${table})`
        : sql`SELECT column_name AS name FROM information_schema.columns WHERE table_name = ${table}`
      expect(columns.map((c) => c["name"])).not.toContain("transcript")
      const [count] = yield* sql`SELECT count(*) AS n FROM ${sql(`${table}_messages`)}`
      expect(Number(count!["n"])).toBe(sessions.reduce((n, s) => n + s.transcript.length, 0))
      // A migrated session grows by appending; a second start migrates nothing and finds the same.
      const last = sessions.at(-1)!
      const longer = [...last.transcript, text("user", "and one more")]
      yield* store.save({ ...expected(last), transcript: longer })
      const again = yield* SqlSessionStore.make({ sessionsTable: table })
      expect(Option.map(yield* again.get(last.id), (s) => s.transcript)).toEqual(Option.some(longer))
      expect(Option.map(yield* again.get("old-4"), (s) => s.transcript)).toEqual(Option.some(sessions[4]!.transcript))
    }).pipe(Effect.scoped, Effect.provide(db.layer()))
  )

  it.live("a first-schema transcript that is not a JSON array stops the migration, and nothing is changed", () =>
    Effect.gen(function* () {
      const ns = yield* TestNamespace
      const sql = yield* SqlClient.SqlClient
      const table = ns.table("sessions")
      yield* createOldSchema(table)
      yield* sql`UPDATE ${sql(table)} SET transcript = ${"{not json"} WHERE id = ${"old-7"}`
      const started = yield* Effect.exit(SqlSessionStore.make({ sessionsTable: table }))
      expect(Exit.isFailure(started) && Cause.pretty(started.cause)).toContain('session "old-7"')
      const rows = yield* sql`SELECT id, transcript FROM ${sql(table)} ORDER BY id`
      expect(rows).toHaveLength(sessions.length)
      expect(rows.find((row) => row["id"] === "old-4")?.["transcript"]).toBe(JSON.stringify(sessions[4]!.transcript))
    }).pipe(Effect.scoped, Effect.provide(db.layer()))
  )
})
