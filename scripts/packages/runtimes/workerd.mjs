// Runs the core program inside workerd (through miniflare) as a module worker, bundled with esbuild the way
// wrangler bundles a worker (conditions workerd, worker, browser; no Node compatibility flag), and checks that a
// worker importing @tether/node fails with the message naming @tether/core.
// Usage, from the directory holding this file's installed dependencies: node workerd.mjs <consumer directory>
import * as esbuild from "esbuild"
import { Miniflare } from "miniflare"
import { readFileSync } from "node:fs"
import { join } from "node:path"

const consumer = process.argv[2]

const bundle = async (entry) => {
  const result = await esbuild.build({
    entryPoints: [join(consumer, entry)],
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    write: false,
    logLevel: "silent"
  })
  return result.outputFiles[0].text
}

/** Starts a workerd with `script` as its only worker, sends it one request, and returns the answer. */
const fetchFrom = async (script) => {
  const mf = new Miniflare({ modules: true, script, compatibilityDate: "2026-04-01" })
  try {
    const response = await mf.dispatchFetch("http://localhost/")
    return { status: response.status, body: await response.text() }
  } finally {
    await mf.dispose()
  }
}

let failed = false
const report = (ok, line) => {
  failed ||= !ok
  console.log(`${ok ? "ok  " : "FAIL"} ${line}`)
}

const core = await fetchFrom(await bundle("dist/worker.js"))
console.log(core.body)
report(core.status === 200, `core program on workerd: HTTP ${core.status}`)

const node = await fetchFrom(await bundle("workerNode.js"))
report(
  node.status === 200 && node.body.startsWith("import failed: ") && node.body.includes("Use @tether/core instead"),
  `@tether/node on workerd: ${node.body.slice(0, 100)}...`
)

const versionOf = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url), "utf8")).version
console.log(
  failed
    ? "workerd: FAILED"
    : `workerd ${versionOf("workerd")} (miniflare ${versionOf("miniflare")}): the core program passed; importing @tether/node failed with the message naming @tether/core`
)
process.exitCode = failed ? 1 : 0
