/**
 * Loaded into the chat server by `pnpm soak --load` (`node --import`): answers a `"heap"` message on the IPC channel
 * with the heap used after garbage collection and the CPU time the process has used, so the load test reads them
 * without the server knowing.
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
const gc = (globalThis as { gc?: () => void }).gc

process.on("message", (message) => {
  if (message !== "heap") return
  gc?.()
  gc?.()
  const cpu = process.cpuUsage()
  process.send?.({ heapUsed: process.memoryUsage().heapUsed, cpuMillis: (cpu.user + cpu.system) / 1000 })
})
// After the listener: adding it refs the channel.
process.channel?.unref()
