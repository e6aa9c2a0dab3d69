/**
 * `pnpm bench --profile [--side=<key>]`: where a side's heap and time go. Prints the top retainers of one live
 * streaming session (two heap snapshots, by constructor, per session) and the top self-time functions and packages
 * of the two-turn loop (a CPU profile). Default side: Tether with default settings.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runChild } from "./child.js"
import type { Retainer, SelfTime } from "./profileSummary.js"
import type { Side } from "./sides/index.js"
import { round } from "./stats.js"
import { printTable } from "./table.js"

const sessions = 400
const runs = 500

const selfTable = (title: string, times: ReadonlyArray<SelfTime>) => {
  console.log(`\n${title}`)
  printTable(
    ["", "ms", "share"],
    times.map((time) => [time.name, round(time.millis, 1).toFixed(1), `${(time.share * 100).toFixed(1)}%`])
  )
}

export const profile = async (side: Side): Promise<void> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-bench-profile-"))
  console.log(`Profile of ${side.label} (${side.key})`)

  const [heap] = (await runChild("profileMain", ["heap", side.key, String(sessions), dir])) as [
    { readonly totalBytesPerSession: number; readonly retainers: ReadonlyArray<Retainer> }
  ]
  console.log(
    `\nTop retainers of one live streaming session (heap snapshots before and after ${sessions} sessions, self size by constructor): ${round(heap.totalBytesPerSession / 1024, 1)} KiB in all`
  )
  printTable(
    ["constructor", "per session", "bytes"],
    heap.retainers.map((retainer) => [
      retainer.kind,
      round(retainer.countPerSession, 1).toFixed(1),
      round(retainer.bytesPerSession, 0).toFixed(0)
    ])
  )

  const [cpu] = (await runChild("profileMain", ["cpu", side.key, String(runs), dir])) as [
    { readonly file: string; readonly functions: ReadonlyArray<SelfTime>; readonly packages: ReadonlyArray<SelfTime> }
  ]
  selfTable(`Top self time of ${runs} two-turn runs, by function`, cpu.functions)
  selfTable("The same, by package", cpu.packages)
  console.log(`\nCPU profile (open in Chrome DevTools): ${cpu.file}`)
}
