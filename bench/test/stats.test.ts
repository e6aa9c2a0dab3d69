import { describe, expect, it } from "vitest"
import { summarize } from "../src/stats.js"

describe("summarize", () => {
  it("gives nearest-rank quantiles: the smallest value with at least q of the sample at or below it", () => {
    const sample = Array.from({ length: 100 }, (_, i) => 100 - i)
    expect(summarize(sample)).toEqual({ n: 100, p50: 50, p90: 90, p99: 99, max: 100 })
    expect(summarize([3, 1, 2])).toEqual({ n: 3, p50: 2, p90: 3, p99: 3, max: 3 })
  })

  it("reads NaN for an empty sample", () => {
    const empty = summarize([])
    expect(empty.n).toBe(0)
    expect(empty.p50).toBeNaN()
    expect(empty.max).toBeNaN()
  })
})
