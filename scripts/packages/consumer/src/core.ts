/** The core program as a script: `node dist/core.js`, `bun run dist/core.js`, `deno run dist/core.js`. */
import { Effect } from "effect"
import { verdict } from "./checks.js"
import { coreChecks } from "./scenario.js"

console.log(verdict("core program", await Effect.runPromise(coreChecks)))
