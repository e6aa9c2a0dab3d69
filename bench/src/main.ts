/**
 * `pnpm bench [--quick]`: runs every scenario against the fake Anthropic server on loopback, prints a table
 * and writes bench/results.json. Each figure is a ratio against a baseline measured in the same run, so it
 * holds on a noisy machine. Benchmarks never fail on a number; `--quick` only proves they still run.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { fullSpeedAbort, stalledAbort } from "./abort.js"
import { canPin, onOwnCores } from "./cpus.js"
import { overhead } from "./overhead.js"
import { scale } from "./scale.js"
import { round } from "./stats.js"
import { treeCancel } from "./tree.js"

// `pnpm bench` runs the bundle bench/build.mjs makes. Run from the sources instead (tsx), it would also have
// source-mapped stack traces on: every aborted fetch reads an error's stack (Node's stream destroy), which then costs
// a source-map lookup that a deployed build does not pay, for Tether and the raw SDK alike.
process.setSourceMapsEnabled(false)

const quick = process.argv.includes("--quick")
const sizes = quick
  ? { stalled: [{ gap: 200, trials: 3 }], fullSpeedTrials: 3, treeTrials: 3, treeWarmup: 1, turns: 100, sessions: 200 }
  : {
      // Trials per side: a p50 over a few trials of a cold path moved by a quarter from run to run.
      stalled: [
        { gap: 1000, trials: 25 },
        { gap: 100, trials: 40 }
      ],
      fullSpeedTrials: 20,
      treeTrials: 100,
      treeWarmup: 10,
      turns: 2000,
      sessions: 5000
    }

const step = async <A>(name: string, run: () => Promise<A>): Promise<A> => {
  process.stdout.write(`running ${name} ... `)
  const t0 = performance.now()
  const result = await run()
  process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  return result
}

const main = async () => {
  console.log(`Tether benchmarks (${quick ? "quick" : "full"}), node ${process.version}`)
  if (!canPin)
    console.log("(no taskset or one core: in the abort scenarios the fake server shares this process's cores)")
  const stalled = []
  for (const { gap, trials } of sizes.stalled) {
    stalled.push(await step(`stalled-stream abort, ${gap} ms gap`, () => onOwnCores(() => stalledAbort(gap, trials))))
  }
  const fullSpeed = await step("full-speed abort", () => onOwnCores(() => fullSpeedAbort(sizes.fullSpeedTrials)))
  const tree = await step("tree cancel (SQLite)", () => treeCancel(sizes.treeTrials, sizes.treeWarmup))
  const cost = await step(`overhead, ${sizes.turns} turns`, () => overhead(sizes.turns))
  const load = await step(`scale, ${sizes.sessions} sessions`, () => scale(sizes.sessions))

  const rows: Array<[string, string, string, string]> = [["scenario", "tether", "baseline", "ratio / target"]]
  for (const s of stalled) {
    rows.push([
      `1. stalled abort, ${s.gapMillis} ms gap: ms to socket close p50 / p99`,
      `${round(s.tether.p50)} / ${round(s.tether.p99)}`,
      `raw SDK ${round(s.raw.p50)} / ${round(s.raw.p99)}`,
      `${round(s.tether.p50 / s.raw.p50)}x (target <= 1.2x)`
    ])
    rows.push([
      "1b. the same, aborting AgentRun.runPromise's AbortSignal",
      `${round(s.tetherSignal.p50)} / ${round(s.tetherSignal.p99)}`,
      `raw SDK ${round(s.raw.p50)} / ${round(s.raw.p99)}`,
      `${round(s.tetherSignal.p50 / s.raw.p50)}x (target <= 1.2x)`
    ])
  }
  rows.push([
    "2. full-speed abort: tokens written after abort p50 / max",
    `${fullSpeed.tether.p50} / ${fullSpeed.tether.max}; by signal ${fullSpeed.tetherSignal.p50} / ${fullSpeed.tetherSignal.max}`,
    `raw SDK ${fullSpeed.raw.p50} / ${fullSpeed.raw.max}`,
    `target <= 1 chunk`
  ])
  rows.push([
    `3. tree cancel (${tree.fibers} fibers, ${tree.streams} streams): ms p50 / p99 / max of ${tree.tree.n}`,
    `${round(tree.tree.p50)} / ${round(tree.tree.p99)} / ${round(tree.tree.max)}`,
    `1 stream ${round(tree.single.p50)} / ${round(tree.single.p99)}`,
    `${round(tree.tree.p50 / tree.single.p50)}x; p99 target < 10 ms; ${tree.writesRolledBack} rolled back, ${tree.rowsLeft} rows left`
  ])
  rows.push([
    "3. the first (cold) tree cancel: ms",
    `${round(tree.treeColdMillis)}`,
    "",
    "before warm-up (not counted above)"
  ])
  rows.push([
    "3b. the same tree without model streams: ms p50 / p99",
    `${round(tree.treeWithoutStreams.p50)} / ${round(tree.treeWithoutStreams.p99)}`,
    `bare Effect ${round(tree.bareEffect.p50)} / ${round(tree.bareEffect.p99)}`,
    "where the time goes (no target)"
  ])
  // What the ratio means in time: the extra per run of two turns and a tool call.
  const extraPerRun = (millis: number) => `+${round(((millis - cost.rawMillis) / cost.turns) * 2, 2)} ms a run`
  rows.push([
    `4. overhead, ${cost.turns} turns: ms total`,
    `${round(cost.tetherMillis, 0)}`,
    `raw SDK ${round(cost.rawMillis, 0)}`,
    `${round(cost.tetherMillis / cost.rawMillis)}x, ${extraPerRun(cost.tetherMillis)} (target <= 1.15x)`
  ])
  rows.push([
    `4b. the same, tracing off: ms total`,
    `${round(cost.untracedMillis, 0)}`,
    `raw SDK ${round(cost.rawMillis, 0)}`,
    `${round(cost.untracedMillis / cost.rawMillis)}x, ${extraPerRun(cost.untracedMillis)} (target <= 1.15x)`
  ])
  for (const [label, side] of [
    ["5.", load.tether],
    ["5b.", load.untraced]
  ] as const) {
    rows.push([
      label === "5."
        ? `5. scale, ${load.sessions} sessions: KiB heap/session, ms to quiesce`
        : "5b. the same, tracing off",
      `${round(side.heapPerSessionKiB, 1)} KiB, ${round(side.quiesceMillis)} ms`,
      `raw SDK ${round(load.raw.heapPerSessionKiB, 1)} KiB, ${round(load.raw.quiesceMillis)} ms`,
      `${round(side.heapPerSessionKiB / load.raw.heapPerSessionKiB)}x heap; sockets left ${side.socketsLeft}; targets < 50 KiB, < 1 s`
    ])
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  console.log()
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join(" | "))
    if (i === 0) console.log(widths.map((width) => "-".repeat(width)).join("-|-"))
  }
  if (!load.gcExposed) console.log("(heap figures without --expose-gc are noisy)")

  const results = {
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    node: process.version,
    abortServerOnOwnCore: canPin,
    stalled,
    fullSpeed,
    tree,
    overhead: {
      ...cost,
      ratio: cost.tetherMillis / cost.rawMillis,
      untracedRatio: cost.untracedMillis / cost.rawMillis
    },
    scale: load
  }
  const file = path.join(
    path.dirname(fileURLToPath(import.meta.url)),
    "..",
    quick ? "results.quick.json" : "results.json"
  )
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
