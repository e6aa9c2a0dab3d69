/**
 * The child process of the scale scenario: `scaleMain <sessions> <side key>...` measures each side in turn, against
 * one fake server (in a process of its own), and prints one JSON line per side. Run with `--expose-gc`.
 */
import * as RemoteFake from "./remoteFake.js"
import { measure, requestsOf } from "./scale.js"
import { byKey } from "./sides/index.js"

process.setSourceMapsEnabled(false)

const [size, ...keys] = process.argv.slice(2)
const sessions = Number(size)
const gcExposed = typeof (globalThis as { gc?: unknown }).gc === "function"
const fake = await RemoteFake.startSummary(60_000, 50)
let served = 0
for (const key of keys) {
  const side = byKey(key)
  if (side === undefined) throw new Error(`no side ${key}`)
  const result = await measure(side, sessions, fake, served)
  served += requestsOf(sessions)
  process.stdout.write(`${JSON.stringify({ key, gcExposed, ...result })}\n`)
}
await fake.close()
process.exit(0)
