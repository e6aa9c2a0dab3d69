/**
 * What grew between two V8 heap snapshots (`v8.writeHeapSnapshot`), by constructor: live objects counted by type and
 * name (a class's name, a closure's function name, `(string)`...), and the kinds whose count grew most.
 *
 * @example
 * ```ts
 * import * as HeapDiff from "./HeapDiff.js"
 *
 * const before = HeapDiff.census(HeapDiff.snapshot())
 * // ... work ...
 * const grown = HeapDiff.diff(before, HeapDiff.census(HeapDiff.snapshot()))
 * console.log(HeapDiff.format(grown, 10))
 * ```
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"

/** Live objects by `type:name`: how many, and their own bytes. @since 0.1.0 */
export type Census = ReadonlyMap<string, { readonly count: number; readonly bytes: number }>

/** Writes a heap snapshot (after a garbage collection) to a temporary file and returns its path. @since 0.1.0 */
export const snapshot = (): string =>
  v8.writeHeapSnapshot(path.join(os.tmpdir(), `tether-soak-${process.pid}-${Date.now()}.heapsnapshot`))

interface SnapshotFile {
  readonly snapshot: {
    readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: ReadonlyArray<unknown> }
  }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/** Counts the objects of the snapshot at `file` by type and name, then deletes the file. @since 0.1.0 */
export const census = (file: string): Census => {
  const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as SnapshotFile
  fs.rmSync(file, { force: true })
  const fields = parsed.snapshot.meta.node_fields
  const types = parsed.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const counts = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < parsed.nodes.length; i += width) {
    const type = types[parsed.nodes[i + typeAt]!]!
    if (type === "hidden" || type === "synthetic") continue
    const name =
      type === "string" || type === "concatenated string" || type === "sliced string"
        ? ""
        : parsed.strings[parsed.nodes[i + nameAt]!]!
    const key = `${type}:${name.slice(0, 60)}`
    const entry = counts.get(key) ?? { count: 0, bytes: 0 }
    entry.count++
    entry.bytes += parsed.nodes[i + sizeAt]!
    counts.set(key, entry)
  }
  return counts
}

/** The kinds that grew from `before` to `after`, most bytes first. @since 0.1.0 */
export const diff = (
  before: Census,
  after: Census
): ReadonlyArray<{ readonly kind: string; readonly count: number; readonly bytes: number }> =>
  [...after]
    .map(([kind, now]) => {
      const then = before.get(kind) ?? { count: 0, bytes: 0 }
      return { kind, count: now.count - then.count, bytes: now.bytes - then.bytes }
    })
    .filter((grown) => grown.count > 0 || grown.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes)

/** The first `top` rows of a diff as text lines. @since 0.1.0 */
export const format = (grown: ReturnType<typeof diff>, top: number): string =>
  grown
    .slice(0, top)
    .map(
      (g) =>
        `  ${g.kind.padEnd(64)} +${String(g.count).padStart(7)} objects  +${(g.bytes / 1024).toFixed(1).padStart(9)} KB`
    )
    .join("\n")
