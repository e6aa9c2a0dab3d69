/** Every side, in the order tables and charts show them: the floor first, then Tether, then the peers. */
import * as bareNodeHttp from "./bareNodeHttp.js"
import * as effectAi from "./effectAi.js"
import * as langchain from "./langchain.js"
import * as modelOnly from "./modelOnly.js"
import * as raw from "./raw.js"
import type { Side } from "./Side.js"
import * as tether from "./tether.js"
import * as vercel from "./vercel.js"

export type { Client, Live, Side, Transport } from "./Side.js"
export { cancelEach } from "./Side.js"

const rawSide = raw.side()
const tetherSide = tether.side()

/** The peers, as their docs recommend. */
export const peers: ReadonlyArray<Side> = [vercel.side, langchain.side, effectAi.side]

/** Who races in the stalled-stream abort: the floor, Tether both ways, the peers. */
export const abortSides: ReadonlyArray<Side> = [rawSide, tetherSide, tether.side({ cancel: "signal" }), ...peers]

/** Who runs the two-turn loop: the floor, Tether with tracing on and off, the peers. */
export const overheadSides: ReadonlyArray<Side> = [rawSide, tetherSide, tether.side({ tracing: false }), ...peers]

/**
 * Who holds thousands of live streams, each in a process of its own: the same, plus Tether and the raw SDK on a
 * `node:http` fetch and a bare `node:http` request (the transport alone), for Tether's own state per run.
 */
export const scaleSides: ReadonlyArray<Side> = [
  ...overheadSides,
  raw.side("node:http"),
  tether.side({ transport: "node:http" }),
  bareNodeHttp.side
]

/** The side of `key`, for the child processes (`modelOnly` runs only when asked for by its key). */
export const byKey = (key: string): Side | undefined =>
  [...scaleSides, ...abortSides, modelOnly.side].find((side) => side.key === key)
