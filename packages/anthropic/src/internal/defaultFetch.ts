/**
 * The SDK's transport where `node:http` is not the platform's (Bun, Deno, workerd, browsers): none of Tether's, so
 * the SDK uses `globalThis.fetch`. Chosen by the `#defaultFetch` import of package.json; on Node it is
 * `defaultFetch.node.ts`.
 */
import type { Fetch } from "./nodeHttpFetch.js"

export const defaultFetch: Fetch | undefined = undefined
