/**
 * The child process of `pnpm bench --profile`:
 * - `profileMain heap <side> <sessions> <dir>`: heap snapshots before and after `sessions` live streams of the side,
 *   printed as what each live session holds, by constructor;
 * - `profileMain cpu <side> <runs> <dir>`: a CPU profile (V8's sampling profiler, as `--cpu-prof` takes it) of
 *   `runs` two-turn runs against a fake in another process, printed as self time by function and by package; the
 *   profile is kept in `dir` for DevTools.
 * Run with `--expose-gc`.
 */
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import * as path from "node:path"
import * as v8 from "node:v8"
import { perSession, heapByConstructor, selfTimes } from "./profileSummary.js"
import * as RemoteFake from "./remoteFake.js"
import { byKey, cancelEach, type Live } from "./sides/index.js"
import { sleep } from "./stats.js"

process.setSourceMapsEnabled(false)

const [mode, key, size, dir] = process.argv.slice(2) as [string, string, string, string]
const side = byKey(key)
if (side === undefined) throw new Error(`no side ${key}`)
const count = Number(size)
const warmup = 50
const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)

const snapshot = async (name: string) => {
  await sleep(50)
  ;(globalThis as { gc?: () => void }).gc?.()
  return v8.writeHeapSnapshot(path.join(dir, `${key}-${name}.heapsnapshot`))
}

const heap = async () => {
  const fake = await RemoteFake.startSummary(60_000, 50)
  const client = await side.connect(fake.url)
  const cancel = client.cancelAll ?? cancelEach
  try {
    // Streams opened and cancelled first, so that what the side sets up once (its first request, the code the JIT
    // compiles) is not counted per session.
    const warm = Array.from({ length: warmup }, () => client.stream())
    await fake.started(warmup)
    await cancel(warm)
    await fake.quiesced(warmup)
    const before = await snapshot("before")
    const lives: Array<Live> = []
    for (let i = 0; i < count; i++) lives.push(client.stream())
    await fake.started(warmup + count)
    const after = await snapshot("after")
    await cancel(lives)
    lives.length = 0
    return { before, after }
  } finally {
    await client.close()
    await fake.close()
  }
}

const cpu = async () => {
  const fake = await RemoteFake.startTwoTurn()
  const client = await side.connect(fake.url)
  const toolRun = client.toolRun
  if (toolRun === undefined) throw new Error(`${side.label} has no tool loop`)
  const session = new Session()
  session.connect()
  try {
    for (let i = 0; i < 50; i++) await toolRun()
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 100 })
    await session.post("Profiler.start")
    for (let i = 0; i < count; i++) await toolRun()
    const { profile } = await session.post("Profiler.stop")
    const file = path.join(dir, `${key}.cpuprofile`)
    fs.writeFileSync(file, JSON.stringify(profile))
    return { profile, file }
  } finally {
    session.disconnect()
    await client.close()
    await fake.close()
  }
}

if (mode === "heap") {
  const { before, after } = await heap()
  const retainers = perSession(heapByConstructor(before), heapByConstructor(after), count)
  const total = retainers.reduce((sum, retainer) => sum + retainer.bytesPerSession, 0)
  print({ sessions: count, totalBytesPerSession: total, retainers: retainers.slice(0, 25) })
  fs.rmSync(before)
  fs.rmSync(after)
} else {
  const { profile, file } = await cpu()
  const { functions, packages } = selfTimes(profile)
  print({ runs: count, file, functions: functions.slice(0, 25), packages: packages.slice(0, 12) })
}
process.exit(0)
