/**
 * Scenario 5: many concurrent streaming sessions in one process, then cancel them all: heap per session, and time
 * until every run (or raw stream) has settled and the server has seen every request end, for Tether's RunRegistry
 * against raw SDK streams with AbortControllers. The fake server runs in a process of its own (as the real API
 * does), so the heap figure is the client's alone and the server's work does not compete with the cancel for this
 * process's CPU.
 */
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, CancelReason, RunRegistry } from "@tether/core"
import * as RemoteFake from "./remoteFake.js"
import { rawClient, rawStream } from "./setup.js"
import { sleep } from "./stats.js"

const gc = () => {
  const collect = (globalThis as { gc?: () => void }).gc
  collect?.()
  collect?.()
}

const heapUsed = async () => {
  await sleep(50)
  gc()
  return process.memoryUsage().heapUsed
}

export interface ScaleSide {
  readonly heapPerSessionKiB: number
  /** From the cancel until every run (or raw stream) has settled and the server has seen the last request end. */
  readonly quiesceMillis: number
  /** Responses the server still had in flight once every request had ended. */
  readonly socketsLeft: number
}

export interface ScaleResult {
  readonly sessions: number
  readonly gcExposed: boolean
  readonly tether: ScaleSide
  /** Tether with tracing off (`Layer.setTracerEnabled(false)`): no spans at all. */
  readonly untraced: ScaleSide
  readonly raw: ScaleSide
}

/** Sessions are opened in batches (a burst of thousands of connects overflows the listen backlog). */
const batchSize = 250

const measureRaw = async (fake: RemoteFake.RemoteSummaryFake, sessions: number): Promise<ScaleSide> => {
  const client = rawClient(fake)
  const before = await heapUsed()
  const controllers: Array<AbortController> = []
  const done: Array<Promise<void>> = []
  for (let opened = 0; opened < sessions; opened += batchSize) {
    const n = Math.min(batchSize, sessions - opened)
    for (let i = 0; i < n; i++) {
      const controller = new AbortController()
      controllers.push(controller)
      done.push(rawStream(client, controller.signal))
    }
    await fake.started(opened + n)
  }
  const after = await heapUsed()
  const t0 = RemoteFake.now()
  controllers.forEach((controller) => controller.abort())
  await Promise.all(done)
  const settled = RemoteFake.now()
  const end = await fake.quiesced(sessions)
  return {
    heapPerSessionKiB: (after - before) / sessions / 1024,
    quiesceMillis: Math.max(settled, end.lastEndedAt) - t0,
    socketsLeft: end.inFlight
  }
}

const measureTether = (tracing: boolean) => async (fake: RemoteFake.RemoteSummaryFake, sessions: number) => {
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }),
      RunRegistry.layer(),
      Logger.minimumLogLevel(LogLevel.Warning),
      Layer.setTracerEnabled(tracing)
    )
  )
  try {
    const agent = Agent.make({ name: "chat" })
    await runtime.runPromise(Effect.void)
    const before = await heapUsed()
    for (let opened = 0; opened < sessions; opened += batchSize) {
      const ids = Array.from({ length: Math.min(batchSize, sessions - opened) }, (_, k) => `s${opened + k}`)
      await runtime.runPromise(
        Effect.flatMap(RunRegistry.RunRegistry, (registry) =>
          Effect.forEach(ids, (id) => registry.start(id, agent, "hi"), { discard: true })
        )
      )
      await fake.started(opened + ids.length)
    }
    const after = await heapUsed()
    const t0 = RemoteFake.now()
    await runtime.runPromise(
      Effect.flatMap(RunRegistry.RunRegistry, (registry) => registry.cancelAll(new CancelReason.Shutdown()))
    )
    const settled = RemoteFake.now()
    const end = await fake.quiesced(sessions)
    const side: ScaleSide = {
      heapPerSessionKiB: (after - before) / sessions / 1024,
      quiesceMillis: Math.max(settled, end.lastEndedAt) - t0,
      socketsLeft: end.inFlight
    }
    return side
  } finally {
    await runtime.dispose()
  }
}

/** Each side gets a fresh server, so request counts start at zero. */
export const scale = async (sessions: number): Promise<ScaleResult> => {
  const side = async (measure: (fake: RemoteFake.RemoteSummaryFake, sessions: number) => Promise<ScaleSide>) => {
    const fake = await RemoteFake.startSummary(60_000, 50)
    try {
      return await measure(fake, sessions)
    } finally {
      await fake.close()
    }
  }
  const raw = await side(measureRaw)
  const tether = await side(measureTether(true))
  const untraced = await side(measureTether(false))
  return { sessions, gcExposed: typeof (globalThis as { gc?: unknown }).gc === "function", tether, untraced, raw }
}
