/**
 * Summaries of V8's profiles for `pnpm bench --profile`: a heap snapshot counted by constructor (so two snapshots
 * give what each live session holds), and a CPU profile's self time by function and by package. Functions of the
 * bundle are named by the source module esbuild marks with a `// path` comment above each module's code.
 */
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"

export interface HeapCount {
  readonly count: number
  readonly bytes: number
}

const stringTypes = new Set(["string", "concatenated string", "sliced string"])

/** What a heap node counts as: its constructor for objects, else its kind (strings and code lumped together). */
const kindOf = (type: string, name: string): string => {
  if (type === "object") return name
  if (stringTypes.has(type)) return "(string)"
  if (type === "code") return "(code)"
  if (type === "number" || type === "heap number") return "(number)"
  return `(${type}) ${name}`.slice(0, 80)
}

interface Snapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: ReadonlyArray<string>
      readonly node_types: readonly [ReadonlyArray<string>]
      readonly edge_fields: ReadonlyArray<string>
      readonly edge_types: readonly [ReadonlyArray<string>]
      readonly location_fields: ReadonlyArray<string>
    }
  }
  readonly nodes: ReadonlyArray<number>
  readonly edges: ReadonlyArray<number>
  readonly locations: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/**
 * Counts and self sizes of a heap snapshot file, by constructor; closures by name and by where they were written
 * (the source module, found through the closure's shared function info and its script, and the snapshot's
 * `locations`), since most closures of Effect code are anonymous.
 */
export const heapByConstructor = (file: string): Map<string, HeapCount> => {
  const snapshot = JSON.parse(fs.readFileSync(file, "utf8")) as Snapshot
  const meta = snapshot.snapshot.meta
  const { nodes, edges, strings } = snapshot
  const nodeFields = meta.node_fields.length
  const edgeFields = meta.edge_fields.length
  const field = (name: string) => meta.node_fields.indexOf(name)
  const [type, name, size, edgeCount] = [field("type"), field("name"), field("self_size"), field("edge_count")]
  const edgeName = meta.edge_fields.indexOf("name_or_index")
  const edgeTo = meta.edge_fields.indexOf("to_node")
  const namedEdges = new Set(
    ["property", "internal", "context", "shortcut", "weak"].map((t) => meta.edge_types[0].indexOf(t))
  )
  const edgeType = meta.edge_fields.indexOf("type")
  // Where each node's edges start.
  const firstEdge = new Uint32Array(nodes.length / nodeFields)
  for (let n = 0, e = 0; n < firstEdge.length; n++) {
    firstEdge[n] = e
    e += nodes[n * nodeFields + edgeCount]! * edgeFields
  }
  /** The node an edge named `wanted` of the node at `offset` points to. */
  const follow = (offset: number, wanted: string): number | undefined => {
    const start = firstEdge[offset / nodeFields]!
    for (let k = 0; k < nodes[offset + edgeCount]!; k++) {
      const e = start + k * edgeFields
      if (namedEdges.has(edges[e + edgeType]!) && strings[edges[e + edgeName]!] === wanted) return edges[e + edgeTo]!
    }
    return undefined
  }
  const lines = new Map<number, number>()
  const locationFields = meta.location_fields.length
  const [objectIndex, line] = ["object_index", "line"].map((f) => meta.location_fields.indexOf(f)) as [number, number]
  for (let i = 0; i < snapshot.locations.length; i += locationFields) {
    lines.set(snapshot.locations[i + objectIndex]!, snapshot.locations[i + line]!)
  }
  const scripts = new Map<number, string>()
  const scriptOf = (closure: number): string => {
    const shared = follow(closure, "shared")
    const script = shared === undefined ? undefined : follow(shared, "script_or_debug_info")
    if (script === undefined) return ""
    const known = scripts.get(script)
    if (known !== undefined) return known
    const url = strings[nodes[script + name]!] ?? ""
    scripts.set(script, url)
    return url
  }
  /** A closure's kind: its name and where it was written, or the builtin it runs (an `await`'s resume closure). */
  const closureKind = (closure: number, closureName: string): string => {
    const url = scriptOf(closure)
    if (url === "") {
      const code = follow(closure, "code")
      const builtin = code === undefined ? "" : (strings[nodes[code + name]!] ?? "")
      if (builtin.endsWith("builtin handle)")) return `closure ${builtin.slice(1, -" handle)".length)}`
    }
    return `closure ${closureName || "(anonymous)"} ${whereOf(url, lines.get(closure) ?? 0).file}`.trim()
  }
  const counts = new Map<string, HeapCount>()
  const types = meta.node_types[0]
  for (let i = 0; i < nodes.length; i += nodeFields) {
    const nodeType = types[nodes[i + type]!]!
    const nodeName = strings[nodes[i + name]!]!
    const kind = nodeType === "closure" ? closureKind(i, nodeName) : kindOf(nodeType, nodeName)
    const seen = counts.get(kind) ?? { count: 0, bytes: 0 }
    counts.set(kind, { count: seen.count + 1, bytes: seen.bytes + nodes[i + size]! })
  }
  return counts
}

export interface Retainer {
  readonly kind: string
  readonly countPerSession: number
  readonly bytesPerSession: number
}

/** What `after` holds over `before`, per session, largest first. */
export const perSession = (
  before: Map<string, HeapCount>,
  after: Map<string, HeapCount>,
  sessions: number
): Array<Retainer> =>
  Array.from(after, ([kind, { count, bytes }]) => {
    const base = before.get(kind) ?? { count: 0, bytes: 0 }
    return { kind, countPerSession: (count - base.count) / sessions, bytesPerSession: (bytes - base.bytes) / sessions }
  }).sort((a, b) => b.bytesPerSession - a.bytesPerSession)

interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  }>
  readonly samples?: ReadonlyArray<number> | undefined
  readonly timeDeltas?: ReadonlyArray<number> | undefined
}

/** The source module of each line of a bundle, from esbuild's `// path/to/module.ts` comments. */
const bundleModules = new Map<string, (line: number) => string>()

const moduleOfBundleLine = (url: string): ((line: number) => string) => {
  const known = bundleModules.get(url)
  if (known !== undefined) return known
  const marks: Array<[number, string]> = []
  fs.readFileSync(fileURLToPath(url), "utf8")
    .split("\n")
    .forEach((text, line) => {
      const mark = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(text)
      if (mark !== null) marks.push([line, mark[1]!])
    })
  const find = (line: number) => {
    let found = "(bundle)"
    for (const [start, module] of marks) {
      if (start > line) break
      found = module
    }
    return found
  }
  bundleModules.set(url, find)
  return find
}

/** Where a function lives: a package's file, a bundled source module, or Node's internals. */
const whereOf = (url: string, line: number): { readonly file: string; readonly pkg: string } => {
  if (url === "") return { file: "", pkg: "(V8)" }
  if (url.startsWith("node:")) return { file: url, pkg: "node" }
  const nodeModules = url.lastIndexOf("/node_modules/")
  if (nodeModules >= 0) {
    const rest = url.slice(nodeModules + "/node_modules/".length).split("/")
    const pkg = rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
    return { file: `${pkg}/${rest.at(-1)}:${line + 1}`, pkg }
  }
  if (url.endsWith(".mjs") && url.startsWith("file:")) {
    const module = moduleOfBundleLine(url)(line)
    const tether = /packages\/([^/]+)\//.exec(module)
    return {
      file: module,
      pkg: tether !== null ? `@tether/${tether[1]}` : module.startsWith("bench/") ? "bench" : module
    }
  }
  return { file: `${url.split("/").at(-1)}:${line + 1}`, pkg: "(other)" }
}

export interface SelfTime {
  readonly name: string
  readonly millis: number
  readonly share: number
}

/** Self time by function and by package, largest first. */
export const selfTimes = (
  profile: CpuProfile
): { readonly functions: Array<SelfTime>; readonly packages: Array<SelfTime> } => {
  const byNode = new Map<number, number>()
  const deltas = profile.timeDeltas ?? []
  profile.samples?.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + (deltas[i] ?? 0) / 1000))
  const total = Array.from(byNode.values()).reduce((sum, millis) => sum + millis, 0)
  const functions = new Map<string, number>()
  const packages = new Map<string, number>()
  for (const node of profile.nodes) {
    const millis = byNode.get(node.id)
    if (millis === undefined) continue
    const { functionName, url, lineNumber } = node.callFrame
    const { file, pkg } = whereOf(url, lineNumber)
    const name = `${functionName || "(anonymous)"}${file === "" ? "" : ` ${file}`}`
    functions.set(name, (functions.get(name) ?? 0) + millis)
    packages.set(pkg, (packages.get(pkg) ?? 0) + millis)
  }
  const sorted = (map: Map<string, number>) =>
    Array.from(map, ([name, millis]) => ({ name, millis, share: millis / total })).sort((a, b) => b.millis - a.millis)
  return { functions: sorted(functions), packages: sorted(packages) }
}
