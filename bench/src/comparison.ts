/**
 * The comparison users read: for each headline figure, the floor's value and each side's value with its ratio to
 * the floor. The charts and the README tables are both drawn from it.
 */
import type { Results } from "./results.js"
import { round } from "./stats.js"

export interface Cell {
  readonly value: number
  readonly ratio: number
}

export interface Row {
  /** Short name of the figure, e.g. "Loop overhead". */
  readonly title: string
  /** What is measured. */
  readonly measure: string
  readonly unit: string
  readonly floorLabel: string
  readonly floor: number
  /** Tether first, then the peers, in the order of `columns`. */
  readonly cells: ReadonlyArray<Cell | undefined>
  /** What each cell's side is, where it says more than its column (e.g. the server it sits behind). */
  readonly labels: ReadonlyArray<string>
  /** Tether's target for the figure, as a reader reads it ("<= 1.2x"). */
  readonly target: string
  /** How the names of Tether's targets for this figure begin (see `targets.ts`). */
  readonly targetName: string
}

/** The columns after the floor: Tether, then each peer. */
export const columns = ["Tether", "Vercel ai", "LangChain", "@effect/ai"] as const

const row = (
  title: string,
  measure: string,
  unit: string,
  floorLabel: string,
  floor: number,
  values: ReadonlyArray<number | undefined>,
  target: string,
  targetName: string,
  labels: ReadonlyArray<string> = columns
): Row => ({
  title,
  measure,
  unit,
  floorLabel,
  floor,
  cells: values.map((value) => (value === undefined ? undefined : { value, ratio: value / floor })),
  target,
  targetName,
  labels
})

export const comparison = (results: Results): Array<Row> => {
  const rows: Array<Row> = []
  const stalled = results.stalled.reduce((a, b) => (b.gapMillis > a.gapMillis ? b : a))
  const p50 = (key: string) => stalled.sides[key]?.p50
  rows.push(
    row(
      "Stalled-stream abort",
      `ms from the abort to the model socket's close, p50, a token every ${stalled.gapMillis} ms`,
      "ms",
      "raw SDK loop",
      p50("raw")!,
      [p50("tether"), p50("vercel"), p50("langchain"), p50("effectAi")],
      "<= 1.2x",
      `stalled abort (${stalled.gapMillis} ms gap), Tether:`
    )
  )
  const runs = results.overhead.turns / 2
  const perRun = (key: string) => {
    const millis = results.overhead.millis[key]
    return millis === undefined ? undefined : millis / runs
  }
  rows.push(
    row(
      "Loop overhead",
      "ms per run of two turns (a tool call, then text), default settings",
      "ms",
      "raw SDK loop",
      perRun("raw")!,
      [perRun("tether"), perRun("vercel"), perRun("langchain"), perRun("effectAi")],
      "<= 1.30x",
      "loop overhead"
    )
  )
  const scale = results.scale.sides
  const heap = (key: string) => scale[key]?.heapPerSessionKiB
  rows.push(
    row(
      "Heap per live session",
      `KiB of heap per live streaming session, ${results.scale.sessions} held, default settings`,
      "KiB",
      "raw SDK",
      heap("raw")!,
      [heap("tether"), heap("vercel"), heap("langchain"), heap("effectAi")],
      "<= 40 KiB",
      "heap per live"
    )
  )
  const quiesce = (key: string) => scale[key]?.quiesceMillis
  rows.push(
    row(
      "Quiesce",
      `ms from cancelling ${results.scale.sessions} live sessions to all settled and closed`,
      "ms",
      "raw SDK",
      quiesce("raw")!,
      [quiesce("tether"), quiesce("vercel"), quiesce("langchain"), quiesce("effectAi")],
      "<= raw SDK",
      "quiesce"
    )
  )
  const disconnect = (key: string) => results.disconnect.sides[key]?.p50
  rows.push(
    row(
      "HTTP disconnect",
      "ms from the HTTP client's disconnect to the model socket's close, p50, each behind its server",
      "ms",
      "raw SDK behind @effect/platform",
      disconnect("rawPlatform")!,
      [
        disconnect("tetherSessions"),
        disconnect("vercelNode"),
        disconnect("langchainNode"),
        disconnect("effectAiPlatform")
      ],
      "<= 1.2x",
      "HTTP disconnect",
      ["Tether (chat routes)", "Vercel ai (node:http)", "LangChain (node:http)", "@effect/ai (platform)"]
    )
  )
  return rows
}

/** A value with its unit, rounded for reading. */
export const formatValue = (value: number, unit: string): string =>
  `${value >= 100 ? round(value, 0) : value >= 10 ? round(value, 1) : round(value, 2)} ${unit}`
