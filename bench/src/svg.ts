/**
 * A small hand-written SVG bar chart: panels of horizontal bars, one bar per side, each the side's ratio to the
 * floor of its panel (1.0 = as fast or as small as the floor; lower is better), with a dashed line at 1.0 and the
 * Tether bars in their own colour. Made to be read in a second: one panel per figure, the value at the end of
 * each bar.
 */

export interface Bar {
  readonly label: string
  /** The side's figure over the floor's. */
  readonly ratio: number
  /** The figure itself, printed after the ratio (e.g. "1.71 ms"). */
  readonly detail: string
  readonly isTether: boolean
}

export interface Panel {
  readonly title: string
  /** What is measured. */
  readonly subtitle: string
  /** What the floor (1.0x) is, with its figure. */
  readonly floor: string
  readonly bars: ReadonlyArray<Bar>
}

export const layout = {
  width: 760,
  labelWidth: 190,
  barArea: 400,
  barHeight: 20,
  barGap: 6,
  panelTitle: 54,
  panelGap: 22,
  top: 56,
  bottom: 30
} as const

const colours = { tether: "#d9480f", peer: "#868e96", floor: "#212529", text: "#212529", muted: "#495057" }

/** Escapes text for XML. */
export const escapeXml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!)

const fmt = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(1))

/** The largest ratio a panel's axis shows: past every bar and the floor, rounded up to a half. */
export const axisMax = (bars: ReadonlyArray<Bar>): number =>
  Math.max(1.5, Math.ceil(Math.max(...bars.map((bar) => (Number.isFinite(bar.ratio) ? bar.ratio : 0))) * 1.1 * 2) / 2)

const panelHeight = (panel: Panel) =>
  layout.panelTitle + panel.bars.length * (layout.barHeight + layout.barGap) - layout.barGap

const text = (x: number, y: number, content: string, attributes = "") =>
  `<text x="${fmt(x)}" y="${fmt(y)}"${attributes === "" ? "" : ` ${attributes}`}>${escapeXml(content)}</text>`

const renderPanel = (panel: Panel, top: number): Array<string> => {
  const max = axisMax(panel.bars)
  const x0 = layout.labelWidth
  const scale = (ratio: number) => (Math.min(ratio, max) / max) * layout.barArea
  const out = [
    text(16, top + 14, panel.title, `font-size="15" font-weight="700"`),
    text(16, top + 30, panel.subtitle, `font-size="12" fill="${colours.muted}"`),
    text(16, top + 45, `1.0x = ${panel.floor}`, `font-size="12" fill="${colours.muted}"`)
  ]
  const labels: Array<string> = []
  const rects: Array<string> = []
  const figures: Array<string> = []
  panel.bars.forEach((bar, i) => {
    const y = top + layout.panelTitle + i * (layout.barHeight + layout.barGap)
    const mid = y + layout.barHeight / 2 + 4
    const fill = bar.isTether ? colours.tether : colours.peer
    const width = Number.isFinite(bar.ratio) ? Math.max(1, scale(bar.ratio)) : 0
    const weight = bar.isTether ? ` font-weight="700"` : ""
    labels.push(text(x0 - 8, mid, bar.label, `font-size="13" text-anchor="end"${weight}`))
    rects.push(
      `<rect class="bar" x="${fmt(x0)}" y="${fmt(y)}" width="${fmt(width)}" height="${layout.barHeight}" rx="2" fill="${fill}"><title>${escapeXml(`${bar.label}: ${bar.ratio.toFixed(2)}x (${bar.detail})`)}</title></rect>`
    )
    const value = Number.isFinite(bar.ratio) ? `${bar.ratio.toFixed(2)}x` : "n/a"
    // A white halo keeps the figure readable where it crosses the floor line.
    const halo = `paint-order="stroke" stroke="#ffffff" stroke-width="3"`
    figures.push(text(x0 + width + 6, mid, `${value} (${bar.detail})`, `font-size="12" ${halo}${weight}`))
  })
  const floorX = x0 + scale(1)
  const barsTop = top + layout.panelTitle - 4
  const barsBottom = top + panelHeight(panel) + 4
  const floor = `<line class="floor" x1="${fmt(floorX)}" y1="${fmt(barsTop)}" x2="${fmt(floorX)}" y2="${fmt(barsBottom)}" stroke="${colours.floor}" stroke-width="1.5" stroke-dasharray="4 3"/>`
  // The floor line over the bars, the figures over the line.
  out.push(...labels, ...rects, floor, ...figures)
  return out
}

/** The whole chart: a title, a line under it (date, machine), the panels, and a legend. */
export const chart = (options: {
  readonly title: string
  readonly note: string
  readonly panels: ReadonlyArray<Panel>
}): string => {
  const heights = options.panels.map(panelHeight)
  const height =
    layout.top + heights.reduce((sum, h) => sum + h, 0) + layout.panelGap * (options.panels.length - 1) + layout.bottom
  const body: Array<string> = [
    text(16, 24, options.title, `font-size="18" font-weight="700"`),
    text(16, 42, options.note, `font-size="12" fill="${colours.muted}"`)
  ]
  let top = layout.top
  options.panels.forEach((panel, i) => {
    body.push(...renderPanel(panel, top))
    top += heights[i]! + layout.panelGap
  })
  const legendY = height - 12
  body.push(
    `<rect x="16" y="${legendY - 9}" width="10" height="10" fill="${colours.tether}"/>`,
    text(30, legendY, "Tether", `font-size="12"`),
    `<rect x="84" y="${legendY - 9}" width="10" height="10" fill="${colours.peer}"/>`,
    text(98, legendY, "peer", `font-size="12"`),
    `<line x1="140" y1="${legendY - 4}" x2="160" y2="${legendY - 4}" stroke="${colours.floor}" stroke-width="1.5" stroke-dasharray="4 3"/>`,
    text(166, legendY, "1.0x = the floor of the panel; shorter is better", `font-size="12"`)
  )
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${height}" viewBox="0 0 ${layout.width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" fill="${colours.text}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...body,
    "</svg>",
    ""
  ].join("\n")
}
