/**
 * `coreHeapMain <runs> [untraced]`: heap per live run of Tether's core alone, default settings (tracing on unless
 * `untraced`), each run held by the `RunRegistry` mid-turn on a model that emits one text delta and then waits
 * forever (no transport, no SDK): what a run itself holds; then `quiesce`, the time `cancelAll` takes to end them all,
 * and the CPU time it took per run (user and system, every thread: steadier than the time on a shared machine).
 * Prints one JSON line; with `TETHER_HEAP_DIR` set, heap snapshots before and after go there; with `TETHER_CPU_PROFILE`
 * set (a file), a CPU profile of the `cancelAll` (with its self time by function and by package in the line). Run
 * with `--expose-gc`.
 */
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { Agent, CancelReason, LanguageModel, RunRegistry } from "@tether/core"
import * as path from "node:path"
import * as v8 from "node:v8"
import { startCpuProfile } from "./cpuProfile.js"
import { sleep } from "./stats.js"

process.setSourceMapsEnabled(false)

const [size, mode] = process.argv.slice(2)
const runs = Number(size ?? 1000)
const stalled = Layer.succeed(
  LanguageModel.LanguageModel,
  LanguageModel.LanguageModel.of({
    runTurn: (_request, onEvents) =>
      Effect.zipRight(
        Effect.sync(() => onEvents([{ _tag: "TextDelta", text: "hi" }])),
        Effect.never
      )
  })
)
const runtime = ManagedRuntime.make(
  Layer.mergeAll(
    stalled,
    RunRegistry.layer(),
    Logger.minimumLogLevel(LogLevel.Warning),
    Layer.setTracerEnabled(mode !== "untraced")
  )
)
const agent = Agent.make({ name: "chat" })
const registry = await runtime.runPromise(RunRegistry.RunRegistry)
const heapUsed = async () => {
  await sleep(50)
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}
const startMany = async (n: number, from: number) => {
  for (let i = 0; i < n; i++) runtime.runSync(registry.start(`s${from + i}`, agent, "hi"))
  await sleep(20)
}
await startMany(50, 0)
await runtime.runPromise(registry.cancelAll(new CancelReason.Shutdown()))
const snapshots = process.env["TETHER_HEAP_DIR"]
const before = await heapUsed()
if (snapshots !== undefined) v8.writeHeapSnapshot(path.join(snapshots, "core-before.heapsnapshot"))
await startMany(runs, 1000)
const after = await heapUsed()
if (snapshots !== undefined) v8.writeHeapSnapshot(path.join(snapshots, "core-after.heapsnapshot"))
const profiling = await startCpuProfile()
const t0 = performance.now()
const cpu0 = process.cpuUsage()
await runtime.runPromise(registry.cancelAll(new CancelReason.Shutdown()))
const quiesce = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
const cancelCpuMicrosPerRun = (cpu.user + cpu.system) / runs
const profiled = await profiling.stop()
process.stdout.write(
  `${JSON.stringify({ runs, mode: mode ?? "traced", kibPerRun: (after - before) / runs / 1024, quiesce, cancelCpuMicrosPerRun, ...profiled })}\n`
)
await runtime.dispose()
process.exit(0)
