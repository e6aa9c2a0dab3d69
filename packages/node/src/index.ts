/**
 * @tether/node: what only Node can do for Tether: tools that run in worker
 * threads and tools that run child processes, each stopped with its run, and
 * an HTTP server with deadlines for slow clients.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CommandTool from "./CommandTool.js"

/** @since 0.1.0 */
export * as NodeServer from "./NodeServer.js"

/** @since 0.1.0 */
export * as WorkerTool from "./WorkerTool.js"
