/**
 * One replica of the cluster scenario: the two-replica test's replica program (`packages/cluster/test/fixtures/
 * replica.ts`, a cluster runner on PostgreSQL with the session entity running a note-taking agent on
 * `AnthropicModel`) in a child process, driven over its stdin and stdout (JSON lines; answers start with "@@ ").
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as net from "node:net"
import { createInterface } from "node:readline"
import { benchPath } from "./meta.js"
import { sleep, within } from "./stats.js"

const repoRoot = benchPath("..")
const program = benchPath("..", "packages", "cluster", "test", "fixtures", "replica.ts")

/** A free TCP port on loopback. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

export interface Replica {
  /** The runner address and process id the replica reports (`host:port/pid`), as `status` names an owner. */
  readonly owner: string
  /** Sends one command and waits for its answer (a failed command rejects with the replica's error). */
  readonly send: (command: Record<string, unknown>) => Promise<any>
  /** SIGKILL; resolves once the process is gone. */
  readonly kill: () => Promise<void>
}

export interface Cluster {
  readonly databaseUrl: string
  readonly prefix: string
  readonly fakeUrl: string
}

/** Starts a replica of `cluster` and waits until it is ready (its runner registered). */
export const startReplica = async (cluster: Cluster): Promise<Replica> => {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", program], {
    cwd: repoRoot,
    env: {
      ...process.env,
      DATABASE_URL: cluster.databaseUrl,
      PREFIX: cluster.prefix,
      FAKE_URL: cluster.fakeUrl,
      RUNNER_PORT: String(await freePort())
    },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>()
  let onReady: ((owner: string) => void) | undefined
  let onExit: ((error: Error) => void) | undefined
  const ready = new Promise<string>((resolve, reject) => {
    onReady = resolve
    onExit = reject
  })
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (!line.startsWith("@@ ")) return
    const message = JSON.parse(line.slice(3))
    if (message.ready !== undefined) onReady!(message.ready)
    const waiting = pending.get(message.id)
    if (waiting === undefined) return
    pending.delete(message.id)
    if (message.error === undefined) waiting.resolve(message.result)
    else waiting.reject(new Error(message.error))
  })
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      const error = new Error(`replica exited (${code ?? signal}): ${stderr}`)
      onExit!(error)
      for (const waiting of pending.values()) waiting.reject(error)
      pending.clear()
      resolve()
    })
  )
  const owner = await within(ready, 60_000, `replica start (${stderr})`)
  let nextId = 0
  return {
    owner,
    send: (command) =>
      within(
        new Promise((resolve, reject) => {
          const id = nextId++
          pending.set(id, { resolve, reject })
          child.stdin!.write(`${JSON.stringify({ ...command, id })}\n`)
        }),
        30_000,
        `replica ${owner}: ${JSON.stringify(command)}`
      ),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      return exited
    }
  }
}

/**
 * Waits until the replicas agree on who holds the shards: for 20 sessions, each held by exactly one replica, twice in
 * a row a second apart. A run whose session's shard moves is cancelled (`LostReplica`), so runs start after this.
 */
export const settled = async (replicas: ReadonlyArray<Replica>): Promise<void> => {
  const sessions = Array.from({ length: 20 }, (_, i) => `settle-${i}`)
  const deadline = performance.now() + 60_000
  let previous = ""
  for (;;) {
    const held = await Promise.all(
      sessions.map(async (sessionId) => {
        const answers = await Promise.all(replicas.map((replica) => replica.send({ op: "holds", sessionId })))
        return replicas.filter((_, i) => answers[i].holds).map((replica) => replica.owner)
      })
    )
    const now = JSON.stringify(held)
    if (now === previous && held.every((holders) => holders.length === 1)) return
    if (performance.now() > deadline) throw new Error("the shards did not settle within 60 s")
    previous = now
    await sleep(1000)
  }
}
