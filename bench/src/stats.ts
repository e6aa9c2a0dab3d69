/** Order statistics of a sample; a benchmark's figures are ratios of these, measured in the same run. */
export interface Summary {
  readonly n: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
}

/** The nearest-rank quantile: the smallest value with at least `q` of the sample at or below it. */
const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!

export const summarize = (values: ReadonlyArray<number>): Summary => {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN
  }
}

export const round = (value: number, digits = 2): number => Number(value.toFixed(digits))

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/** `promise`, or a rejection naming `what` after `millis`: a side that stops answering fails the bench, not hangs it. */
export const within = <A>(promise: Promise<A>, millis: number, what: string): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${millis} ms`)), millis)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
