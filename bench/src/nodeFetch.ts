/**
 * Loaded before anything else in every bench process (`node --import`), so that Node's fetch runs on Node's own
 * undici. Importing the npm package `undici` (as @effect/platform-node does, for @effect/ai's HTTP client) installs
 * that package's Agent as the process's global dispatcher when none is set yet, and Node's fetch would then run
 * on it, for every side that uses Node's fetch. Making a `Request` sets Node's own first; @effect/ai keeps the
 * Agent of its own that `NodeHttpClient.layerUndici` makes.
 */
new Request("http://127.0.0.1/")
