/**
 * The `fetch` on `node:http` that @tether/anthropic uses by default on Node, for the SDK's `fetch` option of the raw
 * sides: the raw SDK on node:http and Tether then stand on the same transport, so that the difference of their heaps
 * per live run is Tether's own state ("own state" in the results).
 */
export { nodeHttpFetch } from "../../packages/anthropic/src/internal/nodeHttpFetch.js"
