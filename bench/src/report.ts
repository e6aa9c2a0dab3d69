/** The terminal report of a run: each scenario's figures by side, with their ratio to the floor, then the targets. */
import type { DisconnectResult } from "./disconnect.js"
import type { Results } from "./results.js"
import type { SseResult } from "./sse.js"
import { round, type Summary } from "./stats.js"
import { printTable } from "./table.js"

const x = (value: number) => `${value.toFixed(2)}x`

const section = (title: string) => console.log(`\n${title}`)

const quantiles = (
  title: string,
  sides: Readonly<Record<string, Summary>>,
  floorKey: string,
  labels: Readonly<Record<string, string>>
) => {
  section(title)
  const floor = sides[floorKey]!.p50
  printTable(
    ["side", "p50", "p90", "p99", "max", `p50 / ${labels[floorKey]}`],
    Object.entries(sides).map(([key, s]) => [
      labels[key] ?? key,
      String(round(s.p50)),
      String(round(s.p90)),
      String(round(s.p99)),
      String(round(s.max)),
      x(s.p50 / floor)
    ])
  )
}

export const printReport = (results: Results): void => {
  const { labels } = results
  for (const stalled of results.stalled) {
    quantiles(
      `1. Stalled-stream abort, ${stalled.gapMillis} ms between tokens: ms from the abort to the server seeing the socket close`,
      stalled.sides,
      "raw",
      labels
    )
  }
  if (results.fullSpeed !== undefined) {
    section("2. Full-speed abort (a token every 2 ms): tokens the server wrote after the abort")
    printTable(
      ["side", "p50", "max"],
      Object.entries(results.fullSpeed.sides).map(([key, s]) => [labels[key] ?? key, String(s.p50), String(s.max)])
    )
  }
  const tree = results.tree
  if (tree !== undefined) {
    section(
      `3. Tree cancel (${tree.fibers} fibers, ${tree.streams} streams, SQLite rollback): ms, ${tree.tree.n} trials`
    )
    const row = (name: string, s: Summary) => [name, ...[s.p50, s.p90, s.p99, s.max].map((v) => String(round(v)))]
    printTable(
      ["", "p50", "p90", "p99", "max"],
      [
        row("the tree", tree.tree),
        row("one stream", tree.single),
        row("the tree without streams", tree.treeWithoutStreams),
        row("the same fibers in bare Effect", tree.bareEffect)
      ]
    )
    console.log(
      `first (cold) tree cancel: ${round(tree.treeColdMillis)} ms; ${tree.writesRolledBack} writes rolled back, ${tree.rowsLeft} rows left`
    )
  }
  const { overhead } = results
  section(`4. Loop overhead: ${overhead.turns / 2} runs of two turns (a tool call, then text) per side`)
  const runs = overhead.turns / 2
  printTable(
    ["side", "ms total", "ms a run", "/ raw SDK"],
    Object.entries(overhead.millis).map(([key, millis]) => [
      labels[key] ?? key,
      String(round(millis, 0)),
      String(round(millis / runs, 3)),
      x(millis / overhead.millis["raw"]!)
    ])
  )
  const { scale } = results
  section(`5. Scale: ${scale.sessions} live streaming sessions, each side in a process of its own`)
  const raw = scale.sides["raw"]!
  printTable(
    ["side", "KiB/session", "/ raw SDK", "ms to quiesce", "/ raw SDK", "sockets left"],
    Object.entries(scale.sides).map(([key, s]) => [
      labels[key] ?? key,
      String(round(s.heapPerSessionKiB, 1)),
      x(s.heapPerSessionKiB / raw.heapPerSessionKiB),
      String(round(s.quiesceMillis, 0)),
      x(s.quiesceMillis / raw.quiesceMillis),
      String(s.socketsLeft)
    ])
  )
  if (results.ownState !== undefined) {
    const own = results.ownState
    console.log(
      `Tether's own state per run: ${round(own.ownKiB, 1)} KiB (Tether on node:http ${round(own.tetherKiB, 1)} - raw SDK on node:http ${round(own.rawKiB, 1)}; a bare node:http request ${round(own.bareKiB, 1)})`
    )
  }
  if (!scale.gcExposed) console.log("(heap figures without --expose-gc are noisy)")
  printDisconnect(results.disconnect, labels)
  if (results.sse !== undefined) printSse(results.sse)
  section(`Targets (${results.mode === "full" ? "full run" : `${results.mode} run: sizes too small to judge`})`)
  printTable(
    ["target", "measured", "limit", ""],
    results.targets.map((target) => [target.name, target.measured, target.limit, target.pass ? "pass" : "FAIL"])
  )
}

/** Scenario 6: each side's ms from the client's disconnect to the model socket's close, and its ratio to the floor. */
export const printDisconnect = (disconnect: DisconnectResult, labels: Readonly<Record<string, string>>): void =>
  quantiles(
    `6. HTTP client disconnect (${disconnect.gapMillis} ms between tokens): ms to the model socket's close, each side behind its server`,
    disconnect.sides,
    "rawPlatform",
    labels
  )

/** Scenario 7: the SSE encoders side by side, and the ratio of the batched one to the one it replaced. */
export const printSse = (sse: SseResult): void => {
  section(
    `7. SSE: runs of ${sse.deltasPerRun} text deltas (bursts of 10, 1 ms apart), ${sse.concurrency} at a time, on real HTTP; the server's CPU`
  )
  const row = (name: string, s: SseResult["batched"]) => [
    name,
    String(s.events),
    String(round(s.eventsPerCpuSecond, 0)),
    String(round(s.socketWrites / s.events, 3)),
    String(round(s.httpChunks / s.events, 3))
  ]
  printTable(
    ["encoder", "events", "events/CPU-s", "socket writes/event", "HTTP chunks/event"],
    [row("one write per event (before)", sse.perEvent), row("batched (ServerSentEvents)", sse.batched)]
  )
  console.log(
    `batched / before: ${x(sse.batched.eventsPerCpuSecond / sse.perEvent.eventsPerCpuSecond)} events per CPU-second, ${x(sse.batched.socketWrites / sse.batched.events / (sse.perEvent.socketWrites / sse.perEvent.events))} socket writes per event; encoding alone: ${round(sse.encodeOnly.perEvent, 0)} -> ${round(sse.encodeOnly.batched, 0)} events/s (${x(sse.encodeOnly.batched / sse.encodeOnly.perEvent)})`
  )
}
