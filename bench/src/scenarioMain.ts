/**
 * `scenarioMain tree|disconnect [trials]`: one scenario of `pnpm bench` alone, its result printed as one JSON line
 * (for checking one target between full runs; `pnpm bench` is what records the figures).
 */
import { onOwnCores } from "./cpus.js"
import { disconnect } from "./disconnect.js"
import { servedSides } from "./servers/index.js"
import { treeCancel } from "./tree.js"

process.setSourceMapsEnabled(false)

const [scenario, size] = process.argv.slice(2)
const result =
  scenario === "tree"
    ? await treeCancel(Number(size ?? 100), 10)
    : scenario === "disconnect"
      ? await onOwnCores(() => disconnect(servedSides, 200, Number(size ?? 40)))
      : undefined
if (result === undefined) throw new Error(`no scenario ${scenario}: tree or disconnect`)
process.stdout.write(`${JSON.stringify(result)}\n`)
process.exit(0)
