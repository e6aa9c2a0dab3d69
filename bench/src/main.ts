/**
 * `pnpm bench`: runs every scenario for Tether and its peers (the raw SDK loop, Vercel `ai`, LangChain and
 * `@effect/ai`, each as its docs recommend) against the fake Anthropic server on loopback, the sides taking turns,
 * prints the figures and the targets, writes bench/results.json and the charts in bench/results/, and rewrites the
 * figures in the READMEs. Each figure is set against a floor measured in the same run, so it holds on a noisy
 * machine. Benchmarks never fail on a number: the targets are printed and recorded, pass or fail.
 *
 * - `--peers`: only the scenarios that compare with the peers (bench/results.peers.json; READMEs untouched);
 * - `--quick`: every scenario and every side, tiny (CI: proves the code runs; bench/results.quick.json); with
 *   `--peers`, only those scenarios, tiny;
 * - `--profile [--side=<key>]`: where one side's heap and time go (default: Tether);
 * - `--sse`: the SSE scenario alone (bench/results.sse.json; READMEs untouched);
 * - `--disconnect`: the HTTP disconnect scenario alone, every side (bench/results.disconnect.json; READMEs untouched;
 *   with `--quick`, tiny);
 * - `--cluster`: cluster mode (replica processes on PostgreSQL at DATABASE_URL): Stop across replicas, failover,
 *   runs per second through three replicas against one (bench/results.cluster.json; with `--quick`, tiny).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fullSpeedAbort, stalledAbort } from "./abort.js"
import { writeCharts } from "./charts.js"
import { cluster, printCluster } from "./cluster.js"
import { canPin, onOwnCores } from "./cpus.js"
import { disconnect } from "./disconnect.js"
import { details, replaceSection, summary } from "./markdown.js"
import { benchPath, meta } from "./meta.js"
import { overhead } from "./overhead.js"
import { profile } from "./profile.js"
import { printDisconnect, printReport, printSse } from "./report.js"
import { ownState, type Mode, type Results } from "./results.js"
import { scale } from "./scale.js"
import { servedSides } from "./servers/index.js"
import { sse } from "./sse.js"
import { step } from "./step.js"
import { abortSides, byKey, overheadSides, scaleSides } from "./sides/index.js"
import { disconnectTarget, evaluate } from "./targets.js"
import { treeCancel } from "./tree.js"

// `pnpm bench` runs the bundle bench/build.mjs makes. Run from the sources instead (tsx), it would also have
// source-mapped stack traces on: every aborted fetch reads an error's stack (Node's stream destroy), which then costs
// a source-map lookup that a deployed build does not pay, for every side alike.
process.setSourceMapsEnabled(false)

const argv = process.argv.slice(2)
const mode: Mode = argv.includes("--quick") ? "quick" : argv.includes("--peers") ? "peers" : "full"
const quick = mode === "quick"
const isPeersOnly = argv.includes("--peers")
const sizes = quick
  ? {
      stalled: [{ gap: 200, trials: 2 }],
      fullSpeedTrials: 2,
      treeTrials: 3,
      treeWarmup: 1,
      turns: 20,
      overheadWarmup: 2,
      sessions: 50,
      disconnectTrials: 2,
      sse: { runsPerBlock: 10, blocks: 1, concurrency: 5 }
    }
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
      overheadWarmup: 20,
      sessions: 5000,
      disconnectTrials: 40,
      sse: { runsPerBlock: 200, blocks: 4, concurrency: 100 }
    }
const disconnectGap = 200

const labels = Object.fromEntries([...scaleSides, ...abortSides, ...servedSides].map((side) => [side.key, side.label]))

const measure = async (): Promise<Results> => {
  const stalled = []
  for (const { gap, trials } of sizes.stalled) {
    stalled.push(
      await step(`stalled-stream abort, ${gap} ms gap`, () => onOwnCores(() => stalledAbort(abortSides, gap, trials)))
    )
  }
  const fullSpeed = isPeersOnly
    ? undefined
    : await step("full-speed abort", () => onOwnCores(() => fullSpeedAbort(abortSides, sizes.fullSpeedTrials)))
  const tree = isPeersOnly
    ? undefined
    : await step("tree cancel (SQLite)", () => treeCancel(sizes.treeTrials, sizes.treeWarmup))
  const cost = await step(`loop overhead, ${sizes.turns} turns a side`, () =>
    overhead(overheadSides, sizes.turns, sizes.overheadWarmup)
  )
  const load = await step(`scale, ${sizes.sessions} sessions a side`, () =>
    scale(scaleSides, sizes.sessions, { isolate: !quick })
  )
  const dropped = await step("HTTP disconnect", () =>
    onOwnCores(() => disconnect(servedSides, disconnectGap, sizes.disconnectTrials))
  )
  const streamed = isPeersOnly ? undefined : await step("SSE encoding", () => sse(sizes.sse))
  const partial = {
    ...meta(),
    mode,
    note: process.env["TETHER_BENCH_NOTE"] || undefined,
    serverOnOwnCore: canPin,
    labels,
    stalled,
    fullSpeed,
    tree,
    overhead: cost,
    scale: load,
    ownState: ownState(load),
    disconnect: dropped,
    sse: streamed
  }
  return { ...partial, targets: evaluate(partial) }
}

const write = (results: Results) => {
  const file = benchPath(mode === "full" ? "results.json" : `results.${mode}.json`)
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  const written = [file]
  if (mode === "full") {
    written.push(...writeCharts(results, benchPath("results")))
    const readme = benchPath("..", "README.md")
    const benchReadme = benchPath("README.md")
    if (replaceSection(readme, "summary", summary(results))) written.push(readme)
    if (replaceSection(benchReadme, "details", details(results))) written.push(benchReadme)
  } else {
    // Drawn all the same, so the chart code runs; kept out of the repository.
    written.push(...writeCharts(results, fs.mkdtempSync(path.join(os.tmpdir(), "tether-bench-charts-"))))
  }
  console.log(`\nwrote ${written.map((name) => path.relative(process.cwd(), name)).join(", ")}`)
}

const main = async () => {
  if (argv.includes("--profile")) {
    const key = argv.find((arg) => arg.startsWith("--side="))?.slice("--side=".length) ?? "tether"
    const side = byKey(key)
    if (side === undefined) throw new Error(`no side ${key}; one of ${scaleSides.map((s) => s.key).join(", ")}`)
    return profile(side)
  }
  if (argv.includes("--cluster")) {
    const sizes = quick
      ? { stopTrials: 4, failoverTrials: 1, runs: 10 }
      : { stopTrials: 200, failoverTrials: 3, runs: 200 }
    console.log(`Tether cluster mode (${quick ? "quick" : "full"}), node ${process.version}`)
    const result = await cluster(sizes)
    printCluster(result)
    const file = benchPath(quick ? "results.cluster.quick.json" : "results.cluster.json")
    fs.writeFileSync(
      file,
      `${JSON.stringify({ ...meta(), mode, note: process.env["TETHER_BENCH_NOTE"] || undefined, cluster: result }, null, 2)}\n`
    )
    return console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
  if (argv.includes("--sse")) {
    const result = await step("SSE encoding", () => sse(sizes.sse))
    printSse(result)
    const file = benchPath("results.sse.json")
    fs.writeFileSync(
      file,
      `${JSON.stringify({ ...meta(), mode, note: process.env["TETHER_BENCH_NOTE"] || undefined, sse: result }, null, 2)}\n`
    )
    return console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
  if (argv.includes("--disconnect")) {
    const result = await step("HTTP disconnect", () =>
      onOwnCores(() => disconnect(servedSides, disconnectGap, sizes.disconnectTrials))
    )
    printDisconnect(result, labels)
    const target = disconnectTarget(result)
    console.log(`\n${target.name}: ${target.measured} (limit ${target.limit}) ${target.pass ? "pass" : "FAIL"}`)
    const file = benchPath(quick ? "results.disconnect.quick.json" : "results.disconnect.json")
    const note = process.env["TETHER_BENCH_NOTE"] || undefined
    fs.writeFileSync(
      file,
      `${JSON.stringify({ ...meta(), mode, note, serverOnOwnCore: canPin, labels, disconnect: result, target }, null, 2)}\n`
    )
    return console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
  }
  console.log(`Tether against its peers (${mode}), node ${process.version}`)
  if (!canPin) {
    console.log("(no taskset or one core: in the abort scenarios the fake server shares this process's cores)")
  }
  const results = await measure()
  printReport(results)
  write(results)
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
