import { describe, expect, it } from "vitest"
import { axisMax, chart, escapeXml, layout, type Panel } from "../src/svg.js"

const panel = (bars: Panel["bars"]): Panel => ({
  title: "Loop overhead",
  subtitle: "ms a run",
  floor: "raw: 1 ms",
  bars
})

const barWidths = (svg: string) =>
  Array.from(svg.matchAll(/<rect class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g), (match) => Number(match[1]))

const floorX = (svg: string) =>
  Array.from(svg.matchAll(/<line class="floor" x1="([\d.]+)"/g), (match) => Number(match[1]))

describe("the SVG bar chart", () => {
  const bars = [
    { label: "Tether", ratio: 1, detail: "1 ms", isTether: true },
    { label: "Vercel ai", ratio: 2, detail: "2 ms", isTether: false },
    { label: "LangChain", ratio: 0.5, detail: "0.5 ms", isTether: false }
  ]

  it("draws one bar per side, as long as its ratio to the floor", () => {
    const svg = chart({ title: "t", note: "n", panels: [panel(bars)] })
    const [tether, vercel, langchain] = barWidths(svg)
    expect(barWidths(svg)).toHaveLength(3)
    expect(vercel).toBeCloseTo(tether! * 2, 0)
    expect(langchain).toBeCloseTo(tether! / 2, 0)
    expect(vercel! / layout.barArea).toBeCloseTo(2 / axisMax(bars), 2)
  })

  it("puts the floor line where a ratio of 1.0 ends, in every panel", () => {
    const svg = chart({ title: "t", note: "n", panels: [panel(bars), panel(bars.slice(0, 1))] })
    const [tether] = barWidths(svg)
    const lines = floorX(svg)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toBeCloseTo(layout.labelWidth + tether!, 0)
    expect(lines[1]).toBeCloseTo(layout.labelWidth + layout.barArea / axisMax(bars.slice(0, 1)), 0)
  })

  it("gives Tether's bars their own colour and the peers another", () => {
    const svg = chart({ title: "t", note: "n", panels: [panel(bars)] })
    const fills = Array.from(svg.matchAll(/<rect class="bar"[^>]* fill="(#[0-9a-f]+)"/g), (match) => match[1])
    expect(fills[0]).not.toBe(fills[1])
    expect(fills[1]).toBe(fills[2])
  })

  it("keeps the axis past the longest bar, and a side without a figure reads n/a", () => {
    expect(axisMax([{ label: "a", ratio: 3.2, detail: "", isTether: false }])).toBeGreaterThanOrEqual(3.2)
    expect(axisMax([{ label: "a", ratio: 0.2, detail: "", isTether: false }])).toBe(1.5)
    const svg = chart({
      title: "t",
      note: "n",
      panels: [panel([{ label: "x", ratio: NaN, detail: "-", isTether: false }])]
    })
    expect(svg).toContain("n/a")
    expect(barWidths(svg)).toEqual([0])
  })

  it("escapes every text it is given", () => {
    expect(escapeXml(`<a & "b">`)).toBe("&lt;a &amp; &quot;b&quot;&gt;")
    const svg = chart({ title: "A & B", note: "<n>", panels: [panel([{ ...bars[0]!, label: "<T>" }])] })
    expect(svg).not.toMatch(/<T>|<n>|A & B/)
    expect(svg).toContain("&lt;T&gt;")
  })
})
