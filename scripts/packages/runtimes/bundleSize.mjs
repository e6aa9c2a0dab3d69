// Bundles the minimal agent (Agent, one Tool, AgentRun, a LanguageModel stub) with esbuild, minified, effect
// external, and holds its size under the budget of bundle-budget.json: what @tether/core adds to an application.
// Usage: node bundleSize.mjs <consumer directory> <budget file>
import * as esbuild from "esbuild"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { gzipSync } from "node:zlib"

const [consumer, budgetFile] = process.argv.slice(2)
const budget = JSON.parse(readFileSync(budgetFile, "utf8"))

const result = await esbuild.build({
  entryPoints: [join(consumer, "dist/minimal.js")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  minify: true,
  external: ["effect", "effect/*"],
  metafile: true,
  write: false,
  logLevel: "silent"
})
const code = result.outputFiles[0].contents
const bytes = code.length
const gzipBytes = gzipSync(code).length
const [output] = Object.values(result.metafile.outputs)
const imports = [...new Set(output.imports.map((i) => i.path))]

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`
const problems = [
  ...(bytes > budget.minifiedBytes ? [`minified ${bytes} B is over the budget of ${budget.minifiedBytes} B`] : []),
  ...(gzipBytes > budget.gzipBytes ? [`gzip ${gzipBytes} B is over the budget of ${budget.gzipBytes} B`] : []),
  ...imports.filter((p) => p !== "effect" && !p.startsWith("effect/")).map((p) => `it imports ${p}`)
]
for (const problem of problems) console.log(`FAIL ${problem}`)
console.log(
  `minimal agent: ${bytes} B (${kib(bytes)}) minified, budget ${budget.minifiedBytes}; ${gzipBytes} B (${kib(gzipBytes)}) gzip, budget ${budget.gzipBytes}; ${Object.keys(result.metafile.inputs).length} modules; imports ${imports.join(", ")}`
)
process.exitCode = problems.length > 0 ? 1 : 0
