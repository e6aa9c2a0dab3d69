/**
 * Loaded into the chat server by `pnpm soak --load` (`node --import`): answers a `"heap"` message on the IPC channel
 * with the heap used after garbage collection, so the load test reads the server's heap without the server knowing.
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
  process.send?.({ heapUsed: process.memoryUsage().heapUsed })
})
// After the listener: adding it refs the channel.
process.channel?.unref()
