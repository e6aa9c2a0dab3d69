/**
 * The SDK's transport on Node (the `node` condition of the `#defaultFetch` import of package.json): the lean fetch on
 * `node:http` / `node:https`. Elsewhere `defaultFetch.ts` leaves the SDK on `globalThis.fetch`.
 */
import { type Fetch, nodeHttpFetch } from "./nodeHttpFetch.js"

export const defaultFetch: Fetch | undefined = nodeHttpFetch
