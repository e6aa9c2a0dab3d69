/**
 * `overheadMain <runs> <side key>...`: the loop-overhead scenario alone (two-turn runs against an in-process fake,
 * the sides taking turns in blocks of 25, after 20 warm-up runs each), printed as one JSON line: wall and CPU
 * (user + system, this process: the fake's work is in it too, alike for every side) ms per run by side, and each
 * as a ratio to the first side. CPU time holds better than wall time on a host that other work shares.
 */
import { FakeAnthropic } from "@tether/testing"
import { byKey } from "./sides/index.js"
import { twoTurnScript } from "./sides/common.js"

process.setSourceMapsEnabled(false)

const [size, ...keys] = process.argv.slice(2)
const sides = keys.map((key) => {
  const side = byKey(key)
  if (side === undefined) throw new Error(`no side ${key}`)
  return side
})
const runs = Number(size ?? 500)
const fake = await FakeAnthropic.start(twoTurnScript)
const clients = await Promise.all(sides.map((side) => side.connect(fake.url)))
const loops = clients.map((client) => client.toolRun!)
for (let i = 0; i < 20; i++) for (const loop of loops) await loop()
const wall = sides.map(() => 0)
const cpu = sides.map(() => 0)
const block = 25
for (let done = 0, round = 0; done < runs; done += block, round++) {
  const n = Math.min(block, runs - done)
  for (let k = 0; k < loops.length; k++) {
    const s = (round + k) % loops.length
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    for (let i = 0; i < n; i++) await loops[s]!()
    const c = process.cpuUsage(c0)
    wall[s]! += performance.now() - t0
    cpu[s]! += (c.user + c.system) / 1000
  }
}
for (const client of clients) await client.close()
await fake.close()
const round3 = (x: number) => Math.round(x * 1000) / 1000
process.stdout.write(
  `${JSON.stringify(
    Object.fromEntries(
      keys.map((key, s) => [
        key,
        {
          wallMs: round3(wall[s]! / runs),
          wallRatio: round3(wall[s]! / wall[0]!),
          cpuMs: round3(cpu[s]! / runs),
          cpuRatio: round3(cpu[s]! / cpu[0]!)
        }
      ])
    )
  )}\n`
)
process.exit(0)
