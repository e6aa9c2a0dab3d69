/** The shape of bench/results.json: what was measured, where, with what, and how it stood against the targets. */
import type { FullSpeedResult, StalledResult } from "./abort.js"
import type { DisconnectResult } from "./disconnect.js"
import type { Meta } from "./meta.js"
import type { OverheadResult } from "./overhead.js"
import type { ScaleResult } from "./scale.js"
import type { SseResult } from "./sse.js"
import type { TreeResult } from "./tree.js"

export type Mode = "full" | "peers" | "quick"

/** Tether's own state per live run: its heap per session on the `node:http` fetch, less the raw SDK's on the same. */
export interface OwnState {
  readonly tetherKiB: number
  readonly rawKiB: number
  /** A bare `node:http` streaming request, for scale: the transport alone. */
  readonly bareKiB: number
  readonly ownKiB: number
}

export interface Target {
  readonly name: string
  readonly measured: string
  readonly limit: string
  readonly pass: boolean
}

export interface Results extends Meta {
  readonly mode: Mode
  /** What the person who ran it said of the machine at the time (`TETHER_BENCH_NOTE`), if anything. */
  readonly note: string | undefined
  /** Whether the fake server had a core of its own in the abort and disconnect scenarios. */
  readonly serverOnOwnCore: boolean
  /** What each side key stands for. */
  readonly labels: Readonly<Record<string, string>>
  readonly stalled: ReadonlyArray<StalledResult>
  readonly fullSpeed: FullSpeedResult | undefined
  readonly tree: TreeResult | undefined
  readonly overhead: OverheadResult
  readonly scale: ScaleResult
  readonly ownState: OwnState | undefined
  readonly disconnect: DisconnectResult
  /** Absent from results written before the scenario existed. */
  readonly sse?: SseResult | undefined
  readonly targets: ReadonlyArray<Target>
}

/** `own = Tether on node:http - raw SDK on node:http`, when the scale scenario measured both. */
export const ownState = (scale: ScaleResult): OwnState | undefined => {
  const tether = scale.sides["tetherNodeHttp"]
  const raw = scale.sides["rawNodeHttp"]
  const bare = scale.sides["bareNodeHttp"]
  if (tether === undefined || raw === undefined || bare === undefined) return undefined
  return {
    tetherKiB: tether.heapPerSessionKiB,
    rawKiB: raw.heapPerSessionKiB,
    bareKiB: bare.heapPerSessionKiB,
    ownKiB: tether.heapPerSessionKiB - raw.heapPerSessionKiB
  }
}
