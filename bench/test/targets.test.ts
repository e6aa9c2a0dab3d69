import { describe, expect, it } from "vitest"
import { ownState, type Results } from "../src/results.js"
import type { Summary } from "../src/stats.js"
import { evaluate } from "../src/targets.js"

const at = (p50: number, p99 = p50): Summary => ({ n: 1, p50, p90: p99, p99, max: p99 })
const side = (heapPerSessionKiB: number, quiesceMillis: number) => ({
  heapPerSessionKiB,
  quiesceMillis,
  settledMillis: quiesceMillis,
  closedMillis: quiesceMillis,
  cpuMillis: quiesceMillis,
  socketsLeft: 0
})

/** A run where every figure of Tether is given and every floor is 1 (or 10 KiB). */
const run = (tether: {
  readonly abort: number
  readonly overhead: number
  readonly heap: number
  readonly nodeHttpHeap: number
  readonly quiesce: number
  readonly disconnect: number
  readonly treeP99: number
}): Omit<Results, "targets"> => {
  const scale = {
    sessions: 5000,
    gcExposed: true,
    sides: {
      raw: side(40, 1),
      tether: side(tether.heap, tether.quiesce),
      rawNodeHttp: side(10, 1),
      tetherNodeHttp: side(tether.nodeHttpHeap, 1),
      bareNodeHttp: side(5, 1)
    }
  }
  return {
    date: "2026-01-01T00:00:00.000Z",
    machine: { cpu: "cpu", cores: 2, memoryGiB: 8, os: "Linux" },
    node: "v20",
    versions: {},
    mode: "full",
    note: undefined,
    serverOnOwnCore: true,
    labels: { tether: "Tether", tetherSignal: "Tether, by AbortSignal" },
    stalled: [{ gapMillis: 1000, sides: { raw: at(1), tether: at(tether.abort) } }],
    fullSpeed: { sides: { raw: at(0), tether: at(0, 1) } },
    tree: {
      fibers: 110,
      streams: 10,
      tree: at(4, tether.treeP99),
      single: at(1),
      treeWithoutStreams: at(2),
      bareEffect: at(1),
      treeColdMillis: 14,
      writesRolledBack: 100,
      rowsLeft: 0
    },
    overhead: { turns: 2, millis: { raw: 1, tether: tether.overhead } },
    scale,
    ownState: ownState(scale),
    disconnect: { gapMillis: 200, sides: { rawPlatform: at(1), tetherSessions: at(tether.disconnect) } }
  }
}

const passing = { abort: 1.2, overhead: 1.3, heap: 40, nodeHttpHeap: 25, quiesce: 1, disconnect: 1.2, treeP99: 7.9 }

describe("the targets", () => {
  it("pass at their limits", () => {
    const targets = evaluate(run(passing))
    expect(targets).toHaveLength(8)
    expect(targets.filter((target) => !target.pass)).toEqual([])
  })

  it.each([
    ["stalled abort", { abort: 1.21 }],
    ["loop overhead", { overhead: 1.31 }],
    ["heap per live", { heap: 40.1 }],
    ["Tether's own state", { nodeHttpHeap: 25.1 }],
    ["quiesce", { quiesce: 1.01 }],
    ["HTTP disconnect", { disconnect: 1.21 }],
    ["tree of 110 fibers", { treeP99: 8 }]
  ])("%s fails just past its limit, and only it", (name, change) => {
    const failed = evaluate(run({ ...passing, ...change })).filter((target) => !target.pass)
    expect(failed.map((target) => target.name.slice(0, name.length))).toEqual([name])
  })

  it("takes Tether's own state as its heap on node:http less the raw SDK's on node:http", () => {
    expect(ownState(run(passing).scale)).toEqual({ tetherKiB: 25, rawKiB: 10, bareKiB: 5, ownKiB: 15 })
  })
})
