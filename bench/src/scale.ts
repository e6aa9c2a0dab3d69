/**
 * Scenario 5: many concurrent streaming sessions in one process, then cancel them all: heap per session and
 * time until every socket is closed, for Tether's RunRegistry against raw SDK streams with AbortControllers.
 * The fake server runs in the same process, so both figures include its share; the ratio cancels it out.
 */
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, CancelReason, RunRegistry } from "@tether/core"
import { FakeAnthropic } from "@tether/testing"
import { rawClient, rawStream, records } from "./setup.js"
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
  readonly quiesceMillis: number
  /** Responses still in flight once quiescent. */
  readonly socketsLeft: number
}

export interface ScaleResult {
  readonly sessions: number
  readonly gcExposed: boolean
  readonly tether: ScaleSide
  readonly raw: ScaleSide
}

const started = (fake: FakeAnthropic.Handle, from: number, sessions: number) =>
  fake.waitUntil((state) =>
    state.requestCount >= from + sessions &&
    records(state, Math.max(from, from + sessions - batchSize), from + sessions).every((r) => r.tokensWritten >= 1)
      ? true
      : undefined
  )

/** Sessions are opened in batches (a burst of thousands of connects overflows the listen backlog). */
const batchSize = 250

/** Every response ended and every request's connection closed. (After an abort Node's fetch may open one spare
 * idle keep-alive socket that carries no request and closes itself after ~4 s: undici#5845; not counted here.) */
const closedAll = (fake: FakeAnthropic.Handle, from: number) =>
  fake.waitUntil((state) =>
    state.inFlight === 0 &&
    records(state, from, state.requestCount).every((r) => r.closedAt !== undefined || r.isFinished)
      ? true
      : undefined
  )

const measureRaw = async (fake: FakeAnthropic.Handle, sessions: number): Promise<ScaleSide> => {
  const client = rawClient(fake)
  const before = await heapUsed()
  const from = fake.requestCount
  const controllers: Array<AbortController> = []
  const done: Array<Promise<void>> = []
  for (let opened = 0; opened < sessions; opened += batchSize) {
    const n = Math.min(batchSize, sessions - opened)
    for (let i = 0; i < n; i++) {
      const controller = new AbortController()
      controllers.push(controller)
      done.push(rawStream(client, controller.signal))
    }
    await started(fake, from, opened + n)
  }
  const after = await heapUsed()
  const t0 = performance.now()
  controllers.forEach((controller) => controller.abort())
  await Promise.all(done)
  await closedAll(fake, from)
  return {
    heapPerSessionKiB: (after - before) / sessions / 1024,
    quiesceMillis: performance.now() - t0,
    socketsLeft: fake.inFlight
  }
}

const measureTether = async (fake: FakeAnthropic.Handle, sessions: number): Promise<ScaleSide> => {
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }),
      RunRegistry.layer,
      Logger.minimumLogLevel(LogLevel.Warning)
    )
  )
  try {
    const agent = Agent.make({ name: "chat" })
    await runtime.runPromise(Effect.void)
    const before = await heapUsed()
    const from = fake.requestCount
    for (let opened = 0; opened < sessions; opened += batchSize) {
      const ids = Array.from({ length: Math.min(batchSize, sessions - opened) }, (_, k) => `s${opened + k}`)
      await runtime.runPromise(
        Effect.flatMap(RunRegistry.RunRegistry, (registry) =>
          Effect.forEach(ids, (id) => registry.start(id, agent, "hi"), { discard: true })
        )
      )
      await started(fake, from, opened + ids.length)
    }
    const after = await heapUsed()
    const t0 = performance.now()
    await runtime.runPromise(
      Effect.flatMap(RunRegistry.RunRegistry, (registry) => registry.cancelAll(new CancelReason.Shutdown()))
    )
    await closedAll(fake, from)
    return {
      heapPerSessionKiB: (after - before) / sessions / 1024,
      quiesceMillis: performance.now() - t0,
      socketsLeft: fake.inFlight
    }
  } finally {
    await runtime.dispose()
  }
}

export const scale = async (sessions: number): Promise<ScaleResult> => {
  const words = Array.from({ length: 50 }, (_, i) => `w${i} `)
  const fake = await FakeAnthropic.start(() => FakeAnthropic.text(words, { interval: 60_000 }))
  try {
    const raw = await measureRaw(fake, sessions)
    const tether = await measureTether(fake, sessions)
    return { sessions, gcExposed: typeof (globalThis as { gc?: unknown }).gc === "function", tether, raw }
  } finally {
    await fake.close()
  }
}
