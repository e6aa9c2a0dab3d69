/**
 * A CPU profile of one stretch of a benchmark (V8's sampling profiler, as `--cpu-prof` takes it), started where
 * `TETHER_CPU_PROFILE` names a file: `stop` writes the profile there and gives its top self time by function and by
 * package, for the JSON line the benchmark prints (nothing where the variable is unset).
 */
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import { selfTimes } from "./profileSummary.js"

export interface CpuProfiling {
  readonly stop: () => Promise<object>
}

export const startCpuProfile = async (file = process.env["TETHER_CPU_PROFILE"]): Promise<CpuProfiling> => {
  const allocations = process.env["TETHER_ALLOC_PROFILE"]
  if (allocations !== undefined) return startAllocationProfile(allocations)
  if (file === undefined) return { stop: async () => ({}) }
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  return {
    stop: async () => {
      const { profile } = await session.post("Profiler.stop")
      session.disconnect()
      fs.writeFileSync(file, JSON.stringify(profile))
      const { functions, packages } = selfTimes(profile)
      return { functions: functions.slice(0, 30), packages: packages.slice(0, 8) }
    }
  }
}

/**
 * Where `TETHER_ALLOC_PROFILE` names a file instead: V8's sampling heap profiler over the same stretch, counting what
 * was allocated whether or not a collection freed it since (DevTools' "allocation sampling").
 */
const startAllocationProfile = async (file: string): Promise<CpuProfiling> => {
  const session = new Session()
  session.connect()
  await session.post("HeapProfiler.enable")
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  return {
    stop: async () => {
      const { profile } = await session.post("HeapProfiler.stopSampling")
      session.disconnect()
      fs.writeFileSync(file, JSON.stringify(profile))
      return {}
    }
  }
}
