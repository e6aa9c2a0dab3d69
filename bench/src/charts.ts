/** The SVG charts of a run, in bench/results/: one with every figure (`peers.svg`), and one per figure. */
import * as fs from "node:fs"
import * as path from "node:path"
import { comparison, formatValue, type Row } from "./comparison.js"
import type { Results } from "./results.js"
import { chart, type Panel } from "./svg.js"

const fileNames = ["abort", "overhead", "heap", "quiesce", "disconnect"]

const panelOf = (row: Row): Panel => ({
  title: row.title,
  subtitle: row.measure,
  floor: `${row.floorLabel}: ${formatValue(row.floor, row.unit)}`,
  bars: row.cells.flatMap((cell, i) =>
    cell === undefined
      ? []
      : [{ label: row.labels[i]!, ratio: cell.ratio, detail: formatValue(cell.value, row.unit), isTether: i === 0 }]
  )
})

export const note = (results: Results): string =>
  `${results.date.slice(0, 10)}, ${results.machine.cpu}, ${results.machine.cores} cores, Node ${results.node}; ratio to the floor measured in the same run`

/** Writes the charts into `dir` and returns their paths. */
export const writeCharts = (results: Results, dir: string): Array<string> => {
  fs.mkdirSync(dir, { recursive: true })
  const panels = comparison(results).map(panelOf)
  const files: Array<[string, string]> = [
    ["peers.svg", chart({ title: "Tether against each peer (lower is better)", note: note(results), panels })],
    ...panels.map((panel, i): [string, string] => [
      `${fileNames[i]}.svg`,
      chart({ title: `${panel.title} (lower is better)`, note: note(results), panels: [panel] })
    ])
  ]
  return files.map(([name, svg]) => {
    const file = path.join(dir, name)
    fs.writeFileSync(file, svg)
    return file
  })
}
