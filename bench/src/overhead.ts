/**
 * Scenario 4: agent runs of two turns (the model calls a tool, the side runs it, the model answers) against a
 * zero-latency fake in this process, for every side: the hand-written raw SDK loop (the floor), Tether with tracing
 * on (its default) and off, and each peer's own tool loop. Total milliseconds per side; the sides take turns in
 * blocks of runs, so each meets the same noise.
 */
import { FakeAnthropic } from "@tether/testing"
import { twoTurnScript } from "./sides/common.js"
import type { Client, Side } from "./sides/index.js"

export interface OverheadResult {
  /** Model turns per side (two a run). */
  readonly turns: number
  /** Total milliseconds of the runs, by side key. */
  readonly millis: Readonly<Record<string, number>>
}

const runs = (client: Client) => {
  const toolRun = client.toolRun
  if (toolRun === undefined) throw new Error("this side has no tool loop")
  return toolRun
}

export const overhead = async (sides: ReadonlyArray<Side>, turns: number, warmup = 20): Promise<OverheadResult> => {
  const fake = await FakeAnthropic.start(twoTurnScript)
  const clients: Array<Client> = []
  try {
    for (const side of sides) clients.push(await side.connect(fake.url))
    const loops = clients.map(runs)
    // Warm every path up first (JIT, sockets).
    for (let i = 0; i < warmup; i++) for (const loop of loops) await loop()
    const millis = sides.map(() => 0)
    const total = Math.ceil(turns / 2)
    const block = 25
    for (let done = 0, round = 0; done < total; done += block, round++) {
      const n = Math.min(block, total - done)
      // The side that goes first rotates from block to block.
      for (let k = 0; k < loops.length; k++) {
        const s = (round + k) % loops.length
        const t0 = performance.now()
        for (let i = 0; i < n; i++) await loops[s]!()
        millis[s]! += performance.now() - t0
      }
    }
    return { turns: total * 2, millis: Object.fromEntries(sides.map((side, s) => [side.key, millis[s]!])) }
  } finally {
    for (const client of clients) await client.close()
    await fake.close()
  }
}
