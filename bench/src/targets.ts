/**
 * The targets of issue "Ahead of every peer", each a ratio to a floor measured in the same run (or a size), printed
 * with pass or fail and recorded in results.json. They never fail the bench: the lead reads them.
 */
import type { DisconnectResult } from "./disconnect.js"
import type { Results, Target } from "./results.js"
import { round } from "./stats.js"

const ratio = (value: number, floor: number) => value / floor

export const evaluate = (results: Omit<Results, "targets">): Array<Target> => {
  const targets: Array<Target> = []
  const add = (name: string, value: number, limit: number, unit: string, pass: boolean) =>
    targets.push({ name, measured: `${round(value)}${unit}`, limit: `${round(limit)}${unit}`, pass })
  for (const stalled of results.stalled) {
    const raw = stalled.sides["raw"]!.p50
    for (const key of ["tether", "tetherSignal"]) {
      const side = stalled.sides[key]
      if (side === undefined) continue
      const r = ratio(side.p50, raw)
      add(`stalled abort (${stalled.gapMillis} ms gap), ${results.labels[key]}: p50 / raw SDK`, r, 1.2, "x", r <= 1.2)
    }
  }
  if (results.fullSpeed !== undefined) {
    for (const key of ["tether", "tetherSignal"]) {
      const side = results.fullSpeed.sides[key]
      if (side === undefined) continue
      add(`full-speed abort, ${results.labels[key]}: tokens after abort, max`, side.max, 1, "", side.max <= 1)
    }
  }
  if (results.tree !== undefined) {
    const p99 = results.tree.tree.p99
    add("tree of 110 fibers + 10 streams cancelled with rollback: p99", p99, 8, " ms", p99 < 8)
  }
  const overhead = results.overhead.millis
  const loop = ratio(overhead["tether"]!, overhead["raw"]!)
  add("loop overhead, default settings (tracing on) / raw SDK loop", loop, 1.3, "x", loop <= 1.3)
  const scale = results.scale.sides
  const heap = scale["tether"]!.heapPerSessionKiB
  add("heap per live streaming session, default settings", heap, 40, " KiB", heap <= 40)
  if (results.ownState !== undefined) {
    const own = results.ownState.ownKiB
    add("Tether's own state per run (on node:http: Tether - raw SDK)", own, 15, " KiB", own <= 15)
  }
  const quiesce = ratio(scale["tether"]!.quiesceMillis, scale["raw"]!.quiesceMillis)
  add(`quiesce of ${results.scale.sessions} / raw SDK's`, quiesce, 1, "x", quiesce <= 1)
  targets.push(disconnectTarget(results.disconnect))
  return targets
}

/** The target of scenario 6: the chat routes' p50 within 1.2x the @effect/platform floor's. */
export const disconnectTarget = (disconnect: DisconnectResult): Target => {
  const chat = ratio(disconnect.sides["tetherSessions"]!.p50, disconnect.sides["rawPlatform"]!.p50)
  return {
    name: "HTTP disconnect -> model socket closed, chat routes: p50 / @effect/platform floor",
    measured: `${round(chat)}x`,
    limit: `${round(1.2)}x`,
    pass: chat <= 1.2
  }
}
