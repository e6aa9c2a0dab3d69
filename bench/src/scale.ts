/**
 * Scenario 5: thousands of concurrent streaming sessions held mid-stream, then all cancelled: heap per live session
 * (after gc), and the time until every run (or request) has settled and the server has seen every request end.
 * Each side runs in a process of its own (`scaleMain.ts`), so heaps do not mix, against a fake server in another
 * process (as the real API is), so the heap is the client's alone and the server's work does not compete with the
 * cancel for this process's CPU.
 */
import { runChild } from "./child.js"
import { startCpuProfile } from "./cpuProfile.js"
import * as RemoteFake from "./remoteFake.js"
import { cancelEach, type Live, type Side } from "./sides/index.js"
import { sleep } from "./stats.js"

const gc = () => {
  const collect = (globalThis as { gc?: () => void }).gc
  collect?.()
  collect?.()
}

const heapUsed = async () => {
  await sleep(50)
  gc()
  return process.memoryUsage().heapUsed
}

export interface ScaleSide {
  readonly heapPerSessionKiB: number
  /** From the cancel until every run (or request) has settled and the server has seen the last request end. */
  readonly quiesceMillis: number
  /** From the cancel until every run (or request) had settled in this process. */
  readonly settledMillis: number
  /** From the cancel until the server had seen the last request end. */
  readonly closedMillis: number
  /** CPU time of this process (all its threads, the collector's included) from the cancel until quiesced. */
  readonly cpuMillis: number
  /** Responses the server still had in flight once every request had ended. */
  readonly socketsLeft: number
}

export interface ScaleResult {
  readonly sessions: number
  readonly gcExposed: boolean
  /** By side key. */
  readonly sides: Readonly<Record<string, ScaleSide>>
}

/** Sessions are opened in batches (a burst of thousands of connects overflows the listen backlog). */
const batchSize = 250

/**
 * Holds `sessions` live streams of `side`, then cancels them all. Runs in the process it measures, against `fake`
 * (a server whose streams stall after their first token), which has served `served` requests before.
 */
export const measure = async (
  side: Side,
  sessions: number,
  fake: RemoteFake.RemoteSummaryFake,
  served: number
): Promise<ScaleSide> => {
  const client = await side.connect(fake.url)
  try {
    // One stream first, opened and cancelled, so what a side sets up on its first request is not counted.
    const warm = client.stream()
    await fake.started(served + 1)
    await (client.cancelAll ?? cancelEach)([warm])
    await fake.quiesced(served + 1)
    const before = await heapUsed()
    const lives: Array<Live> = []
    for (let opened = 0; opened < sessions; opened += batchSize) {
      const n = Math.min(batchSize, sessions - opened)
      for (let i = 0; i < n; i++) lives.push(client.stream())
      await fake.started(served + 1 + opened + n)
    }
    const after = await heapUsed()
    const profiling = await startCpuProfile()
    const t0 = RemoteFake.now()
    const cpu0 = process.cpuUsage()
    await (client.cancelAll ?? cancelEach)(lives)
    const settled = RemoteFake.now()
    const end = await fake.quiesced(served + 1 + sessions)
    const cpu = process.cpuUsage(cpu0)
    const profiled = await profiling.stop()
    return {
      heapPerSessionKiB: (after - before) / sessions / 1024,
      quiesceMillis: Math.max(settled, end.lastEndedAt) - t0,
      settledMillis: settled - t0,
      closedMillis: end.lastEndedAt - t0,
      cpuMillis: (cpu.user + cpu.system) / 1000,
      socketsLeft: end.inFlight,
      ...profiled
    }
  } finally {
    await client.close()
  }
}

/** Requests `measure` sends: a warm-up stream, then the sessions. */
export const requestsOf = (sessions: number): number => 1 + sessions

/**
 * Every side's scale figures: each side in a fresh process (`isolate`), or all of them one after the other in one
 * child (the quick run, which only proves the code runs).
 */
export const scale = async (
  sides: ReadonlyArray<Side>,
  sessions: number,
  options: { readonly isolate: boolean; readonly onSide?: (side: Side) => void }
): Promise<ScaleResult> => {
  const groups = options.isolate ? sides.map((side) => [side]) : [sides]
  const results: Record<string, ScaleSide> = {}
  let gcExposed = true
  for (const group of groups) {
    group.forEach((side) => options.onSide?.(side))
    const lines = await runChild("scaleMain", [String(sessions), ...group.map((side) => side.key)])
    for (const line of lines as Array<ScaleSide & { key: string; gcExposed: boolean }>) {
      const { key, gcExposed: exposed, ...side } = line
      results[key] = side
      gcExposed &&= exposed
    }
  }
  return { sessions, gcExposed, sides: results }
}
