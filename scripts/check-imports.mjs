// Checks the import graph of every package's src: no circle of runtime imports (type-only imports are erased and
// do not count), and in @tether/core no definition module imports the engine. `--graph` prints each package's graph.
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"

const root = resolve(dirname(new URL(import.meta.url).pathname), "..")
const printGraph = process.argv.includes("--graph")

/** The definitions of @tether/core: what an agent, a tool, a message or an event is. They never import the engine. */
const coreDefinitions = new Set([
  "Agent.ts",
  "AgentError.ts",
  "CancelReason.ts",
  "Checkpoint.ts",
  "CurrentRun.ts",
  "LanguageModel.ts",
  "Message.ts",
  "ModelError.ts",
  "RunEvent.ts",
  "RunOutcome.ts",
  "SessionStore.ts",
  "StagedWrites.ts",
  "TokenBudget.ts",
  "Tool.ts"
])
/** Helpers a definition may use: plain functions and classes with no engine behind them. */
const definitionHelpers = new Set(["internal/describe.ts", "internal/requestStop.ts"])

const filesUnder = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : path.endsWith(".ts") ? [path] : []
  })

/** Relative runtime imports of a file: `import`/`export ... from` that are not `import type`/`export type`. */
const runtimeImports = (file) => {
  const source = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "")
  const found = []
  const statement = /^\s*(import|export)\s+(type\s+)?([^"]*?)\s+from\s+"(\.[^"]+)"/gm
  for (const match of source.matchAll(statement)) {
    if (match[2] !== undefined) continue
    // `import { type A, type B } from` is erased too.
    const names = match[3].replace(/[{}\s]/g, "")
    if (names.length > 0 && names.split(",").every((name) => name.startsWith("type"))) continue
    found.push(resolve(dirname(file), match[4].replace(/\.js$/, ".ts")))
  }
  for (const match of source.matchAll(/^\s*import\s+"(\.[^"]+)"/gm)) {
    found.push(resolve(dirname(file), match[1].replace(/\.js$/, ".ts")))
  }
  return found
}

/** Strongly connected components of more than one file (or a file importing itself): the circles. */
const circlesOf = (graph) => {
  let index = 0
  const indices = new Map()
  const lowlinks = new Map()
  const stack = []
  const onStack = new Set()
  const circles = []
  const visit = (node) => {
    indices.set(node, index)
    lowlinks.set(node, index)
    index++
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue
      if (!indices.has(next)) {
        visit(next)
        lowlinks.set(node, Math.min(lowlinks.get(node), lowlinks.get(next)))
      } else if (onStack.has(next)) {
        lowlinks.set(node, Math.min(lowlinks.get(node), indices.get(next)))
      }
    }
    if (lowlinks.get(node) === indices.get(node)) {
      const component = []
      let member
      do {
        member = stack.pop()
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) circles.push(component)
    }
  }
  for (const node of graph.keys()) if (!indices.has(node)) visit(node)
  return circles
}

const problems = []
const packagesDir = join(root, "packages")
for (const pkg of readdirSync(packagesDir).sort()) {
  const src = join(packagesDir, pkg, "src")
  try {
    statSync(src)
  } catch {
    continue
  }
  const graph = new Map(filesUnder(src).map((file) => [file, runtimeImports(file)]))
  const name = (file) => relative(src, file)
  for (const circle of circlesOf(graph)) {
    problems.push(`@tether/${pkg}: import circle: ${circle.map(name).sort().join(" -> ")}`)
  }
  if (pkg === "core") {
    for (const [file, imports] of graph) {
      if (!coreDefinitions.has(name(file))) continue
      for (const imported of imports) {
        const target = name(imported)
        if (!coreDefinitions.has(target) && !definitionHelpers.has(target)) {
          problems.push(`@tether/core: the definition ${name(file)} imports the engine module ${target}`)
        }
      }
    }
  }
  if (printGraph) {
    console.log(`@tether/${pkg}`)
    for (const [file, imports] of [...graph].sort(([a], [b]) => name(a).localeCompare(name(b)))) {
      console.log(`  ${name(file)} -> ${imports.map(name).sort().join(", ") || "(nothing of the package)"}`)
    }
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem)
  process.exit(1)
}
console.log("imports: no circle in any package; core's definitions import nothing of the engine")
