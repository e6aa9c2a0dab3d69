/**
 * `pnpm bench --cluster`: cluster mode on this machine (replica processes on loopback, PostgreSQL at DATABASE_URL,
 * the fake model server in a process of its own). Three figures:
 *
 * - **Stop across replicas**: ms from sending Stop to the model server seeing the run's socket close, the Stop sent
 *   through a replica that does not own the run, against the same Stop sent through the owner (the local path), in
 *   the same run, trials alternating. Target: p99 < 50 ms.
 * - **Failover**: ms from kill -9 of a run's owner until the survivor answers that the run ended. Target: < 10 s.
 * - **Runs per second** through three replicas against one, each run a short answer on a session of its own.
 *
 * Every cluster gets a fresh database (dropped afterwards). The replicas are the cluster tests' replica processes
 * (`packages/cluster/test/support/ReplicaProcess.ts`, the replica program run from its TypeScript sources with tsx),
 * in both configurations alike.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as ReplicaProcess from "../../packages/cluster/test/support/ReplicaProcess.js"
import type { Replica } from "../../packages/cluster/test/support/ReplicaProcess.js"
import { benchPath } from "./meta.js"
import * as remoteFake from "./remoteFake.js"
import { now } from "./remoteFake.js"
import { round, sleep, summarize, type Summary } from "./stats.js"
import { step } from "./step.js"

export interface Sizes {
  readonly stopTrials: number
  readonly failoverTrials: number
  readonly runs: number
}

export interface ClusterResults {
  readonly stop: {
    /** Stop sent through a replica that does not own the run. */
    readonly across: Summary
    /** Stop sent through the run's owner. */
    readonly local: Summary
    /** Owners seen over the trials (the sessions spread over the replicas). */
    readonly owners: number
  }
  /** ms from kill -9 of the owner to the run answered ended by the survivor, per trial. */
  readonly failover: ReadonlyArray<number>
  readonly throughput: {
    readonly runs: number
    readonly oneReplica: number
    readonly threeReplicas: number
  }
  readonly targets: ReadonlyArray<{ readonly name: string; readonly value: number; readonly met: boolean }>
}

const databaseUrl =
  process.env.DATABASE_URL !== undefined && /^postgres(ql)?:\/\//.test(process.env.DATABASE_URL)
    ? process.env.DATABASE_URL
    : "postgres://postgres@127.0.0.1:5432/test"

/** Runs `use` on a fresh database, with replicas of it started by `replica()`; everything is gone afterwards. */
const withCluster = async <A>(fakeUrl: string, use: (replica: () => Promise<Replica>) => Promise<A>): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  // Closed in reverse: the replicas killed, then the database dropped, then the client closed.
  const inScope = <X, E>(effect: Effect.Effect<X, E, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
  try {
    const admin = await inScope(Layer.build(PgClient.layer({ url: Redacted.make(databaseUrl) })))
    const clusterUrl = await inScope(Effect.provide(ReplicaProcess.freshDatabase(databaseUrl), admin))
    let started = 0
    return await use(async () => {
      const runnerPort = await Effect.runPromise(ReplicaProcess.freePort)
      return inScope(
        ReplicaProcess.spawnReplica(
          `R${started++}`,
          {
            DATABASE_URL: clusterUrl,
            PREFIX: "tether_cluster",
            FAKE_URL: fakeUrl,
            RUNNER_PORT: String(runnerPort)
          },
          benchPath("..")
        )
      )
    })
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** One command to a replica, its answer. */
const send = (replica: Replica, command: Record<string, unknown>): Promise<any> =>
  Effect.runPromise(replica.send(command))

/** Until the replicas agree on who holds the shards: a run whose session's shard moves is cancelled. */
const settled = (replicas: ReadonlyArray<Replica>) => Effect.runPromise(ReplicaProcess.shardsSettled(replicas))

const ownerOf = async (replica: Replica, sessionId: string): Promise<string> => {
  const status = await send(replica, { op: "status", sessionId })
  if (status._tag !== "Running") throw new Error(`session ${sessionId} is not running: ${JSON.stringify(status)}`)
  return status.owner
}

/** Stop latencies, through the owner and through another replica by turns, on three replicas. */
const stopLatency = async (trials: number) => {
  const fake = await remoteFake.start(50, 400)
  try {
    return await withCluster(fake.url, async (replica) => {
      const replicas = [await replica(), await replica(), await replica()]
      await settled(replicas)
      const across: Array<number> = []
      const local: Array<number> = []
      const owners = new Set<string>()
      const warmup = 2
      for (let trial = 0; trial < trials + warmup; trial++) {
        const sessionId = `stop-${trial}`
        await send(replicas[trial % 3]!, { op: "start", sessionId, runId: `r-${sessionId}`, message: "note k" })
        await fake.tokensAtLeast(trial, 2)
        const owner = await ownerOf(replicas[0]!, sessionId)
        owners.add(owner)
        const isAcross = trial % 2 === 1
        const caller = replicas.find((one) => (one.owner === owner) !== isAcross)!
        const sentAt = now()
        await send(caller, { op: "stop", sessionId })
        const { closedAt } = await fake.closed(trial)
        if (trial < warmup) continue
        ;(isAcross ? across : local).push(closedAt - sentAt)
      }
      return { across: summarize(across), local: summarize(local), owners: owners.size }
    })
  } finally {
    await fake.close()
  }
}

/** ms from kill -9 of the owner of a streaming run until the survivor answers that it ended, on two replicas. */
const failover = async (): Promise<number> => {
  const fake = await remoteFake.start(50, 400)
  try {
    return await withCluster(fake.url, async (replica) => {
      const replicas = [await replica(), await replica()]
      await settled(replicas)
      await send(replicas[0]!, { op: "start", sessionId: "s-k", runId: "r-k", message: "note k" })
      await fake.tokensAtLeast(0, 2)
      const owner = await ownerOf(replicas[0]!, "s-k")
      const [dying, survivor] = replicas[0]!.owner === owner ? replicas : [replicas[1]!, replicas[0]!]
      await Effect.runPromise(dying!.killHard)
      const killedAt = now()
      for (;;) {
        const status = await send(survivor!, { op: "status", sessionId: "s-k" })
        if (status._tag === "Ended") return now() - killedAt
        if (now() - killedAt > 60_000) throw new Error("the lost run did not end within 60 s")
        await sleep(100)
      }
    })
  } finally {
    await fake.close()
  }
}

/** Runs per second: `runs` short runs (sessions of their own), started 20 at a time through the replicas by turns. */
const throughput = async (replicaCount: number, runs: number): Promise<number> => {
  const fake = await remoteFake.start(0, 20)
  try {
    return await withCluster(fake.url, async (replica) => {
      const replicas: Array<Replica> = []
      for (let i = 0; i < replicaCount; i++) replicas.push(await replica())
      await settled(replicas)
      // One run each first, so that the first runs of a process do not count its warm-up.
      for (let i = 0; i < replicaCount; i++) {
        await send(replicas[i]!, { op: "start", sessionId: `warm-${i}`, runId: `warm-${i}`, message: "note w" })
        await fake.closed(i)
      }
      const startedAt = now()
      let next = 0
      const worker = async () => {
        for (let i = next++; i < runs; i = next++) {
          await send(replicas[i % replicaCount]!, {
            op: "start",
            sessionId: `tp-${i}`,
            runId: `tp-${i}`,
            message: "note t"
          })
          await fake.closed(replicaCount + i)
        }
      }
      await Promise.all(Array.from({ length: 20 }, worker))
      return runs / ((now() - startedAt) / 1000)
    })
  } finally {
    await fake.close()
  }
}

/** The cluster scenario. */
export const cluster = async (sizes: Sizes): Promise<ClusterResults> => {
  const stop = await step(`Stop across replicas, ${sizes.stopTrials} trials`, () => stopLatency(sizes.stopTrials))
  const lost: Array<number> = []
  for (let trial = 0; trial < sizes.failoverTrials; trial++) {
    lost.push(await step(`failover after kill -9, trial ${trial + 1}`, failover))
  }
  const oneReplica = await step(`${sizes.runs} runs through one replica`, () => throughput(1, sizes.runs))
  const threeReplicas = await step(`${sizes.runs} runs through three replicas`, () => throughput(3, sizes.runs))
  return {
    stop,
    failover: lost.map((ms) => round(ms, 0)),
    throughput: { runs: sizes.runs, oneReplica: round(oneReplica, 1), threeReplicas: round(threeReplicas, 1) },
    targets: [
      { name: "Stop across replicas p99 < 50 ms", value: round(stop.across.p99, 1), met: stop.across.p99 < 50 },
      { name: "failover after kill -9 < 10 s", value: round(Math.max(...lost), 0), met: Math.max(...lost) < 10_000 }
    ]
  }
}

/** The figures as lines for the terminal. */
export const printCluster = (results: ClusterResults): void => {
  const row = (name: string, summary: Summary) =>
    `  ${name.padEnd(32)} p50 ${summary.p50.toFixed(1).padStart(7)} ms   p99 ${summary.p99.toFixed(1).padStart(7)} ms   max ${summary.max.toFixed(1).padStart(7)} ms   (n ${summary.n})`
  console.log(`\nStop -> model socket closed (three replicas, owners seen: ${results.stop.owners})`)
  console.log(row("through another replica", results.stop.across))
  console.log(row("through the owner (local)", results.stop.local))
  console.log(`  ratio p50 ${(results.stop.across.p50 / results.stop.local.p50).toFixed(2)}x`)
  console.log(`\nFailover after kill -9: ${results.failover.map((ms) => `${ms} ms`).join(", ")}`)
  console.log(
    `\nRuns per second (${results.throughput.runs} runs, 20 at a time): one replica ${results.throughput.oneReplica}, ` +
      `three replicas ${results.throughput.threeReplicas} ` +
      `(${(results.throughput.threeReplicas / results.throughput.oneReplica).toFixed(2)}x)`
  )
  console.log("\nTargets")
  for (const target of results.targets) {
    console.log(`  ${target.met ? "pass" : "FAIL"}  ${target.name}: ${target.value}`)
  }
}
