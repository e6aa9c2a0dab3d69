/**
 * What `@tether/node` resolves to on runtimes without Node's `worker_threads` and `child_process` (workerd, edge
 * runtimes, browsers; through the `workerd`, `worker`, `edge-light` and `browser` export conditions): importing it
 * fails at once with a message that says what to use instead.
 */
const message =
  "@tether/node needs Node.js (it runs worker threads and child processes), and this runtime is not Node. " +
  "Use @tether/core instead: Tool.make for Effect code, PromiseTool.make for Promise code, Checkpoint.run for " +
  "synchronous work."

const unsupported = (name: string): never =>
  new Proxy({} as never, {
    get: () => {
      throw new Error(`${name}: ${message}`)
    }
  })

export const WorkerTool = unsupported("WorkerTool")
export const CommandTool = unsupported("CommandTool")
export const NodeServer = unsupported("NodeServer")

throw new Error(message)
