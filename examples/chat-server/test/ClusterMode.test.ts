/**
 * The chat server in cluster mode, over real HTTP: two replicas as child processes (`src/main.ts` with
 * `CLUSTER_RUNNER_PORT`, what `pnpm start:cluster` runs three of) on loopback and a fresh PostgreSQL database, their
 * model the real SDK against `FakeAnthropic` in this process. A session's run goes on the replica that owns the
 * session (its shard), whichever replica the request reached; the replicas' run logs say which one ran it.
 */
import { ShardingConfig } from "@effect/cluster"
import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { FakeAnthropic, SessionClient as Client } from "@tether/testing"
import { Context, Effect, Layer, Schedule } from "effect"
import * as OfflineScript from "../src/OfflineScript.js"
import * as Replica from "../src/Replica.js"
import * as Harness from "./support/harness.js"
import { client, freshDatabase, isAvailable } from "./support/Postgres.js"
import { alice, orderStagedAndAnswering } from "./support/scenarios.js"

const prefix = "tether_chat"

interface Cluster {
  readonly a: Replica.Replica
  readonly b: Replica.Replica
  readonly fake: FakeAnthropic.Service
  /** Runs a statement on the cluster's database. */
  readonly query: <A>(statement: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) => Effect.Effect<A>
}

class TwoReplicas extends Context.Tag("test/TwoReplicas")<TwoReplicas, Cluster>() {}

const twoReplicas = Layer.scoped(
  TwoReplicas,
  Effect.gen(function* () {
    const databaseUrl = yield* freshDatabase
    // A long answer (400 words, 15 ms apart): a run is still streaming when the tests stop it.
    const fake = yield* FakeAnthropic.make(OfflineScript.make({ interval: 15, answerWords: 400 }))
    const env = {
      SESSION_SECRET: Harness.secret,
      ANTHROPIC_API_KEY: "test-key",
      ANTHROPIC_BASE_URL: fake.url,
      ANTHROPIC_MAX_RETRIES: "0",
      LOG_LEVEL: undefined
    }
    const spawn = (name: string) =>
      Effect.flatMap(Replica.freePort, (runnerPort) =>
        Replica.spawn({ name, runnerPort, databaseUrl, prefix, env })
      ).pipe(Effect.orDie)
    const [a, b] = yield* Effect.all([spawn("replica-a"), spawn("replica-b")], { concurrency: "unbounded" })
    const database = client(databaseUrl)
    const cluster: Cluster = {
      a,
      b,
      fake,
      query: (statement) => Effect.orDie(Effect.provide(Effect.flatMap(SqlClient.SqlClient, statement), database))
    }
    yield* shardsSettled(cluster)
    return cluster
  })
)

/**
 * Until the two runners hold every shard between them. The first replica up takes every shard, then hands half over
 * when the second registers: an event stream of a session whose shard moves then ends early (its run goes on where it
 * was; the cluster's caller does not re-attach), which these tests are not about.
 */
const shardsSettled = (cluster: Cluster) =>
  cluster
    .query(
      (sql) => sql<{ holders: number; locks: number }>`SELECT count(DISTINCT pid)::int AS holders,
        count(*)::int AS locks FROM pg_locks WHERE locktype = 'advisory' AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
    )
    .pipe(
      Effect.filterOrFail(
        ([held]) => held?.holders === 2 && held.locks === ShardingConfig.defaults.shardsPerGroup,
        () => "shards still moving"
      ),
      Effect.retry(Schedule.spaced("100 millis")),
      Effect.timeout("30 seconds"),
      Effect.orDie
    )

const postMessage = (
  replica: Replica.Replica,
  sessionId: string,
  message: string,
  disconnect: "cancel" | "detach" = "cancel"
) =>
  Client.openEventStream({
    port: replica.port,
    method: "POST",
    path: `/api/sessions/${sessionId}/messages`,
    headers: alice,
    body: JSON.stringify({ message, disconnect })
  })

/** The replicas whose run log has a run of `sessionId` starting. */
const runningOn = (cluster: Cluster, sessionId: string) =>
  [cluster.a, cluster.b].filter((replica) => replica.output().includes(`started (session ${sessionId})`))

/** The run rows of `sessionId` once none is running (its owner marks a run's row ended just after the run ends). */
const endedRunRows = (cluster: Cluster, sessionId: string) =>
  cluster
    .query(
      (sql) => sql<{ status: string; reason: string | null }>`SELECT status, reason FROM ${sql(`${prefix}_runs`)}
        WHERE session_id = ${sessionId}`
    )
    .pipe(
      Effect.filterOrFail((rows) => rows.every((row) => row.status === "ended")),
      Effect.retry(Schedule.spaced("50 millis")),
      Effect.timeout("10 seconds"),
      Effect.orDie
    )

describe.skipIf(!isAvailable)("chat server in cluster mode (two replicas, real HTTP, PostgreSQL)", () => {
  layer(twoReplicas, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("every response names its replica: the page (which shows it), the API, a 404", () =>
      Effect.gen(function* () {
        const { a, b } = yield* TwoReplicas
        const page = yield* Client.requestJson({ port: b.port, method: "GET", path: "/" })
        expect(page.headers["x-tether-replica"]).toBe("replica-b")
        expect(page.json.unparsed).toContain("page from replica-b")
        const status = yield* Client.requestJson({
          port: a.port,
          method: "GET",
          path: "/api/sessions/none",
          headers: alice
        })
        expect([status.status, status.headers["x-tether-replica"]]).toEqual([404, "replica-a"])
        const missing = yield* Client.requestJson({ port: a.port, method: "GET", path: "/no-such-page" })
        expect([missing.status, missing.headers["x-tether-replica"]]).toEqual([404, "replica-a"])
      })
    )

    it.effect(
      "Stop through the replica that does not run the run: Cancelled(UserAbort), the model's socket closed, the order never committed",
      () =>
        Effect.gen(function* () {
          const cluster = yield* TwoReplicas
          const { a, b, fake } = cluster
          const stream = yield* postMessage(a, "s-stop", "Order a kettle")
          expect(stream.status).toBe(200)
          expect(stream.headers["x-tether-replica"]).toBe("replica-a")
          yield* stream.waitFor(orderStagedAndAnswering).pipe(Effect.timeout("30 seconds"))
          const [owner] = runningOn(cluster, "s-stop")
          expect(owner).toBeDefined()
          const other = owner === a ? b : a

          const stop = yield* Client.requestJson({
            port: other.port,
            method: "POST",
            path: "/api/sessions/s-stop/cancel",
            headers: alice
          })
          expect(stop.headers["x-tether-replica"]).toBe(other.name)
          expect(stop.json).toMatchObject({
            wasRunning: true,
            outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" }, writesRolledBack: 1 }
          })
          const events = yield* stream.ended.pipe(Effect.timeout("10 seconds"))
          expect(events.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "UserAbort" } } })

          // The model request that was streaming: its socket closed, never finished.
          const streaming = yield* fake.awaitEnded((yield* fake.requestCount) - 1).pipe(Effect.timeout("10 seconds"))
          expect(streaming.isFinished).toBe(false)
          expect(streaming.closedAt).toBeDefined()

          for (const replica of [a, b]) {
            const status = yield* Client.requestJson({
              port: replica.port,
              method: "GET",
              path: "/api/sessions/s-stop",
              headers: alice
            })
            expect(status.json).toMatchObject({
              status: "ended",
              outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" } }
            })
            const orders = yield* Client.requestJson({
              port: replica.port,
              method: "GET",
              path: "/orders",
              headers: alice
            })
            expect(orders.json).toEqual({ orders: [] })
          }
          expect(yield* endedRunRows(cluster, "s-stop")).toEqual([{ status: "ended", reason: "UserAbort" }])
          const records = yield* cluster.query((sql) => sql`SELECT key FROM ${sql(`${prefix}_records`)}`)
          expect(records).toEqual([])
        })
    )

    it.effect(
      "two messages for one session at once, one per replica: one run starts, the other gets 409 SessionBusy",
      () =>
        Effect.gen(function* () {
          const cluster = yield* TwoReplicas
          const { a, b, fake } = cluster
          const before = yield* fake.requestCount
          const messages = ["Find a quiet grinder and order two", "Find a red kettle and order one"] as const
          const answers = yield* Effect.all(
            [postMessage(a, "s-busy", messages[0]), postMessage(b, "s-busy", messages[1])],
            { concurrency: "unbounded" }
          )
          expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409])
          const winner = answers.findIndex((answer) => answer.status === 200)
          const refused = answers[1 - winner]!
          yield* refused.ended
          expect(JSON.parse(refused.text())).toMatchObject({ error: { _tag: "SessionBusy", sessionId: "s-busy" } })

          // Let the run reach the model a few times, then stop it.
          const started = answers[winner]!
          yield* started
            .waitFor((events) => events.some((event) => event.event === "ToolSucceeded"))
            .pipe(Effect.timeout("30 seconds"))
          yield* Client.requestJson({
            port: a.port,
            method: "POST",
            path: "/api/sessions/s-busy/cancel",
            headers: alice
          })
          expect((yield* started.ended.pipe(Effect.timeout("10 seconds"))).at(-1)?.event).toBe("RunCancelled")

          expect(runningOn(cluster, "s-busy")).toHaveLength(1)
          expect(yield* endedRunRows(cluster, "s-busy")).toEqual([{ status: "ended", reason: "UserAbort" }])
          const requests = (yield* fake.requests).filter((request) => request.index >= before)
          expect(requests.length).toBeGreaterThanOrEqual(2)
          expect(requests[0]!.rawBody).toContain(messages[winner])
          expect(requests.filter((request) => request.rawBody.includes(messages[1 - winner]!))).toEqual([])
        })
    )

    it.effect(
      "detach: the client drops its stream on one replica and re-attaches through the other with Last-Event-ID: every event once, the run completes and commits",
      () =>
        Effect.gen(function* () {
          const cluster = yield* TwoReplicas
          const { a, b } = cluster
          const first = yield* postMessage(a, "s-detach", "Order a kettle", "detach")
          expect(first.status).toBe(200)
          const seen = yield* first.waitFor(orderStagedAndAnswering).pipe(Effect.timeout("30 seconds"))
          yield* first.destroy
          const lastId = Math.max(...first.events.map((event) => event.id ?? -1))
          expect(lastId).toBeGreaterThanOrEqual(seen.length - 1)

          const again = yield* Client.openEventStream({
            port: b.port,
            method: "GET",
            path: "/api/sessions/s-detach/events",
            headers: { ...alice, "last-event-id": String(lastId) }
          })
          expect([again.status, again.headers["x-tether-replica"]]).toEqual([200, "replica-b"])
          const rest = yield* again.ended.pipe(Effect.timeout("60 seconds"))
          expect(rest.at(-1)?.event).toBe("RunCompleted")

          // Both streams together: ids strictly increasing (nothing twice), and the same events as a full replay from
          // the start through the first replica (nothing missed).
          const joined = [...first.events.filter((event) => event.id! <= lastId), ...rest]
          const ids = joined.map((event) => event.id!)
          expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true)
          const replay = yield* Client.openEventStream({
            port: a.port,
            method: "GET",
            path: "/api/sessions/s-detach/events",
            headers: alice
          })
          const all = yield* replay.ended.pipe(Effect.timeout("10 seconds"))
          expect(all.map((event) => [event.id, event.event])).toEqual(joined.map((event) => [event.id, event.event]))
          expect(yield* endedRunRows(cluster, "s-detach")).toEqual([{ status: "ended", reason: "Completed" }])
          const orders = yield* Client.requestJson({ port: b.port, method: "GET", path: "/orders", headers: alice })
          expect((orders.json as { orders: ReadonlyArray<unknown> }).orders).toHaveLength(1)
        })
    )
  })
})
