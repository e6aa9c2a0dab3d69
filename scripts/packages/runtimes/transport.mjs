// Which transport @tether/anthropic gives the Anthropic SDK on each runtime: its `#defaultFetch` import, resolved by
// esbuild under each runtime's conditions from the installed tarball. Node must get the fetch on node:http; Bun,
// Deno, workerd and browsers the module that leaves the SDK on globalThis.fetch, with nothing of node:http in their
// bundle. Usage: node transport.mjs <directory where @tether/anthropic is installed>
import * as esbuild from "esbuild"

const consumer = process.argv[2]

const runtimes = [
  { name: "node", conditions: ["node"], transport: "defaultFetch.node.js" },
  { name: "bun", conditions: ["bun", "node"], transport: "defaultFetch.js" },
  { name: "deno", conditions: ["deno", "node"], transport: "defaultFetch.js" },
  { name: "workerd", conditions: ["workerd", "worker", "browser"], transport: "defaultFetch.js" },
  { name: "browser", conditions: ["browser"], transport: "defaultFetch.js" }
]

/** The modules of @tether/anthropic that a bundle under `conditions` holds, and what it imports from outside. */
const bundle = async (conditions) => {
  const result = await esbuild.build({
    stdin: { contents: 'export { AnthropicModel } from "@tether/anthropic"', resolveDir: consumer, loader: "js" },
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions,
    external: ["effect", "effect/*", "@effect/*", "@tether/core", "@anthropic-ai/sdk", "node:*"],
    metafile: true,
    write: false,
    logLevel: "silent"
  })
  const [output] = Object.values(result.metafile.outputs)
  return {
    modules: Object.keys(result.metafile.inputs).map((path) => path.split("/").at(-1)),
    imports: output.imports.map((i) => i.path)
  }
}

let failed = false
const lines = []
for (const runtime of runtimes) {
  const { modules, imports } = await bundle(runtime.conditions)
  const transports = modules.filter((name) => /^defaultFetch(\.node)?\.[jt]s$/.test(name))
  const nodeImports = imports.filter((path) => path.startsWith("node:"))
  const expected = runtime.transport.replace(/\.js$/, "")
  const ok =
    transports.length === 1 &&
    transports[0].replace(/\.[jt]s$/, "") === expected &&
    (runtime.name === "node" ? nodeImports.includes("node:http") : nodeImports.length === 0)
  failed ||= !ok
  lines.push(
    `${ok ? "ok  " : "FAIL"} ${runtime.name} (${runtime.conditions.join(", ")}): ${transports.join(", ") || "no transport module"}` +
      `${nodeImports.length > 0 ? `, imports ${nodeImports.join(", ")}` : ", no node: import"}`
  )
}
console.log(lines.join("\n"))
console.log(
  failed
    ? "transport: FAILED"
    : "transport: node:http on Node; globalThis.fetch (no node: import) on Bun, Deno, workerd and browsers"
)
process.exitCode = failed ? 1 : 0
