/**
 * Loaded into the chat server by `pnpm soak --load` (`node --import`): answers a `"heap"` message on the IPC channel
 * with the heap used after garbage collection and the CPU time the process has used, so the load test reads them
 * without the server knowing. `"profile-start"` starts the V8 CPU profiler (`node:inspector`) and
 * `{ profileStop: path }` stops it and writes the profile (`.cpuprofile`, for Chrome DevTools or speedscope) to
 * `path`, so a profile covers the load only, not the server's start.
 * The channel does not keep the server alive.
 *
 * @example
 * ```ts
 * // node --expose-gc --import ./soak/src/heapProbe.ts src/main.ts, spawned with an "ipc" stdio entry
 * import "./heapProbe.js"
 * ```
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { Session } from "node:inspector"

const gc = (globalThis as { gc?: () => void }).gc
let profiler: Session | undefined

process.on("message", (message: unknown) => {
  if (message === "profile-start") {
    profiler = new Session()
    profiler.connect()
    profiler.post("Profiler.enable", () =>
      profiler?.post("Profiler.start", () => process.send?.({ profileStarted: true }))
    )
    return
  }
  if (typeof message === "object" && message !== null && "profileStop" in message) {
    const file = String(message.profileStop)
    profiler?.post("Profiler.stop", (error, result) => {
      if (error === null) fs.writeFileSync(file, JSON.stringify(result.profile))
      profiler?.disconnect()
      profiler = undefined
      process.send?.({ profileWritten: error === null })
    })
    return
  }
  if (message !== "heap") return
  gc?.()
  gc?.()
  const cpu = process.cpuUsage()
  process.send?.({ heapUsed: process.memoryUsage().heapUsed, cpuMillis: (cpu.user + cpu.system) / 1000 })
})
// After the listener: adding it refs the channel.
process.channel?.unref()
