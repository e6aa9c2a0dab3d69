/**
 * The figures of a full run in the READMEs: a short comparison in the root README and every figure in
 * bench/README.md, each between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` markers, rewritten by
 * each full run.
 */
import * as fs from "node:fs"
import { columns, comparison, formatValue } from "./comparison.js"
import type { Results } from "./results.js"
import { round, type Summary } from "./stats.js"
import { markdownTable } from "./table.js"

const x = (ratio: number) => `${ratio.toFixed(2)}x`

/** The date, machine, Node and versions a run was measured with. */
export const provenance = (results: Results): string => {
  const versions = Object.entries(results.versions)
    .map(([name, version]) => `\`${name}\` ${version}`)
    .join(", ")
  const note = results.note === undefined ? "" : ` ${results.note}`
  return `Full run of ${results.date.slice(0, 10)} on ${results.machine.cpu} (${results.machine.cores} cores, ${results.machine.memoryGiB} GiB), ${results.machine.os}, Node ${results.node}.${note} Versions: ${versions}.`
}

/** Whether Tether met its targets for a figure of the comparison. */
const verdict = (results: Results, targetName: string): string => {
  const found = results.targets.filter((target) => target.name.startsWith(targetName))
  if (found.length === 0) return ""
  return found.every((target) => target.pass) ? "pass" : "**fail**"
}

/** The root README's table: each headline figure, the floor, Tether and each peer, with ratios. */
export const summary = (results: Results): string => {
  const rows = comparison(results).map((row) => [
    `${row.title}: ${row.measure}`,
    `${formatValue(row.floor, row.unit)} (${row.floorLabel})`,
    ...row.cells.map((cell, i) => {
      if (cell === undefined) return "n/a"
      const text = `${formatValue(cell.value, row.unit)} (${x(cell.ratio)})`
      return i === 0 ? `**${text}**` : text
    }),
    `${row.target}: ${verdict(results, row.targetName)}`
  ])
  return [
    markdownTable(["figure", "floor", ...columns, "Tether's target"], rows),
    "",
    provenance(results),
    "",
    "![Tether against each peer, ratio to the floor](bench/results/peers.svg)"
  ].join("\n")
}

const quantileRows = (results: Results, sides: Readonly<Record<string, Summary>>, floorKey: string) =>
  Object.entries(sides).map(([key, s]) => [
    results.labels[key] ?? key,
    ...[s.p50, s.p90, s.p99, s.max].map((v) => String(round(v))),
    x(s.p50 / sides[floorKey]!.p50)
  ])

/** bench/README.md's tables: every figure of every side, and the targets. */
export const details = (results: Results): string => {
  const out: Array<string> = [provenance(results), ""]
  const quantileHeader = (floor: string) => ["side", "p50", "p90", "p99", "max", `p50 / ${floor}`]
  for (const stalled of results.stalled) {
    out.push(
      `**Stalled-stream abort, a token every ${stalled.gapMillis} ms**: ms from the abort to the model socket's close`,
      ""
    )
    out.push(markdownTable(quantileHeader("raw SDK"), quantileRows(results, stalled.sides, "raw")), "")
  }
  if (results.fullSpeed !== undefined) {
    out.push("**Full-speed abort, a token every 2 ms**: tokens the server wrote after the abort", "")
    out.push(
      markdownTable(
        ["side", "p50", "max"],
        Object.entries(results.fullSpeed.sides).map(([key, s]) => [
          results.labels[key] ?? key,
          String(s.p50),
          String(s.max)
        ])
      ),
      ""
    )
  }
  const tree = results.tree
  if (tree !== undefined) {
    const row = (name: string, s: Summary) => [name, ...[s.p50, s.p90, s.p99, s.max].map((v) => String(round(v)))]
    out.push(
      `**Tree cancel** (${tree.fibers} fibers, ${tree.streams} streams, staged writes rolled back in SQLite), ms over ${tree.tree.n} trials; the first (cold) cancel: ${round(tree.treeColdMillis)} ms; ${tree.writesRolledBack} writes rolled back, ${tree.rowsLeft} rows left`,
      ""
    )
    out.push(
      markdownTable(
        ["", "p50", "p90", "p99", "max"],
        [
          row("the tree", tree.tree),
          row("one stream", tree.single),
          row("the tree without streams", tree.treeWithoutStreams),
          row("the same fibers in bare Effect", tree.bareEffect)
        ]
      ),
      ""
    )
  }
  const runs = results.overhead.turns / 2
  const rawMillis = results.overhead.millis["raw"]!
  out.push(`**Loop overhead**: ${runs} runs of two turns per side`, "")
  out.push(
    markdownTable(
      ["side", "ms total", "ms a run", "/ raw SDK"],
      Object.entries(results.overhead.millis).map(([key, millis]) => [
        results.labels[key] ?? key,
        String(round(millis, 0)),
        String(round(millis / runs, 3)),
        x(millis / rawMillis)
      ])
    ),
    ""
  )
  const raw = results.scale.sides["raw"]!
  out.push(`**Scale**: ${results.scale.sessions} live streaming sessions, each side in a process of its own`, "")
  out.push(
    markdownTable(
      ["side", "KiB/session", "/ raw SDK", "ms to quiesce", "/ raw SDK", "sockets left"],
      Object.entries(results.scale.sides).map(([key, s]) => [
        results.labels[key] ?? key,
        String(round(s.heapPerSessionKiB, 1)),
        x(s.heapPerSessionKiB / raw.heapPerSessionKiB),
        String(round(s.quiesceMillis, 0)),
        x(s.quiesceMillis / raw.quiesceMillis),
        String(s.socketsLeft)
      ])
    ),
    ""
  )
  if (results.ownState !== undefined) {
    const own = results.ownState
    out.push(
      `Tether's own state per run: **${round(own.ownKiB, 1)} KiB** (Tether on node:http ${round(own.tetherKiB, 1)} KiB - the raw SDK on node:http ${round(own.rawKiB, 1)} KiB; a bare node:http request holds ${round(own.bareKiB, 1)} KiB).`,
      ""
    )
  }
  out.push(
    `**HTTP disconnect**, a token every ${results.disconnect.gapMillis} ms: ms from the client's disconnect to the model socket's close, each side behind its server`,
    ""
  )
  out.push(
    markdownTable(quantileHeader("the floor"), quantileRows(results, results.disconnect.sides, "rawPlatform")),
    ""
  )
  out.push("**Targets**", "")
  out.push(
    markdownTable(
      ["target", "measured", "limit", ""],
      results.targets.map((target) => [target.name, target.measured, target.limit, target.pass ? "pass" : "**fail**"])
    )
  )
  return out.join("\n")
}

/** Replaces what stands between the `name` markers of `file`; false when the file has no such markers. */
export const replaceSection = (file: string, name: string, content: string): boolean => {
  const text = fs.readFileSync(file, "utf8")
  const begin = `<!-- bench:${name}:begin -->`
  const end = `<!-- bench:${name}:end -->`
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) return false
  fs.writeFileSync(file, `${text.slice(0, from + begin.length)}\n${content}\n${text.slice(to)}`)
  return true
}
