/**
 * The heap this process uses after garbage collection (three rounds of `gc()`, each followed by a turn of the
 * event loop; run node with `--expose-gc`, or the figure includes garbage).
 */
import { Effect } from "effect"

const gc = (globalThis as { gc?: () => void }).gc

export const heapUsed = Effect.promise(async () => {
  for (let i = 0; i < 3; i++) {
    gc?.()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
})
