/**
 * Scenarios 1 and 2: how fast a cancelled agent run closes the model's socket, and how many tokens the server
 * wrote after the cancel, for a Tether run (AnthropicModel) against a hand-written raw SDK loop with an
 * AbortSignal.
 */
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Scope } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, CancelReason } from "@tether/core"
import * as RemoteFake from "./remoteFake.js"
import { rawClient, rawStream } from "./setup.js"
import { sleep, summarize, type Summary } from "./stats.js"

interface Trial {
  readonly closeMillis: number
  readonly tokensAfterAbort: number
}

type Starter = () => { readonly abort: () => void; readonly done: Promise<unknown> }

const trial = async (fake: RemoteFake.RemoteFake, start: Starter, tokensBefore: number, waitMillis: number) => {
  const index = fake.requestCount()
  const { abort, done } = start()
  await fake.tokensAtLeast(index, tokensBefore)
  await sleep(waitMillis)
  const t0 = RemoteFake.now()
  abort()
  const { closedAt, tokenTimes } = await fake.closed(index)
  await done
  return {
    closeMillis: closedAt - t0,
    tokensAfterAbort: tokenTimes.filter((time) => time > t0).length
  } satisfies Trial
}

const runBoth = async (options: {
  readonly interval: number
  readonly tokens: number
  readonly tokensBefore: number
  readonly waitMillis: number
  readonly trials: number
}) => {
  // The model server runs in a process of its own, as a real one does: what it sees is not delayed by our work.
  const fake = await RemoteFake.start(options.interval, options.tokens)
  const client = rawClient(fake)
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }),
      Logger.minimumLogLevel(LogLevel.Warning)
    )
  )
  const agent = Agent.make({ name: "bench" })
  const rt = await runtime.runtime()
  // Tether's side is a whole agent run, cancelled the way a Stop button cancels it.
  const tether: Starter = () => {
    const scope = runtime.runSync(Scope.make())
    const run = runtime.runSync(Scope.extend(AgentRun.start(agent, "hi"), scope))
    return {
      abort: () => runtime.runFork(run.requestCancel(new CancelReason.UserAbort())),
      done: runtime.runPromise(Effect.zipRight(run.outcome, Scope.close(scope, Exit.void)))
    }
  }
  // The same run from Promise code, cancelled as the raw side is: by aborting an AbortSignal.
  const tetherSignal: Starter = () => {
    const controller = new AbortController()
    return {
      abort: () => controller.abort(),
      done: AgentRun.runPromise(agent, "hi", { runtime: rt, signal: controller.signal })
    }
  }
  const raw: Starter = () => {
    const controller = new AbortController()
    return { abort: () => controller.abort(), done: rawStream(client, controller.signal) }
  }
  const results = { tether: [] as Array<Trial>, tetherSignal: [] as Array<Trial>, raw: [] as Array<Trial> }
  try {
    const sides = [
      [raw, results.raw],
      [tether, results.tether],
      [tetherSignal, results.tetherSignal]
    ] as const
    for (let i = 0; i < options.trials; i++) {
      // Alternate, so every side meets the same noise, and rotate who goes first.
      for (let k = 0; k < sides.length; k++) {
        const [start, into] = sides[(i + k) % sides.length]!
        into.push(await trial(fake, start, options.tokensBefore, options.waitMillis))
      }
    }
  } finally {
    await runtime.dispose()
    await fake.close()
  }
  return results
}

export interface StalledResult {
  readonly gapMillis: number
  /** Cancelled with `run.requestCancel` (an Effect). */
  readonly tether: Summary
  /** Cancelled by aborting the `AbortSignal` given to `AgentRun.runPromise`. */
  readonly tetherSignal: Summary
  readonly raw: Summary
}

/** Scenario 1: abort mid-gap of a stream that writes a token every `gap` ms. */
export const stalledAbort = async (gapMillis: number, trials: number): Promise<StalledResult> => {
  const results = await runBoth({ interval: gapMillis, tokens: 20, tokensBefore: 2, waitMillis: gapMillis / 2, trials })
  return {
    gapMillis,
    tether: summarize(results.tether.map((t) => t.closeMillis)),
    tetherSignal: summarize(results.tetherSignal.map((t) => t.closeMillis)),
    raw: summarize(results.raw.map((t) => t.closeMillis))
  }
}

export interface FullSpeedResult {
  readonly tether: Summary
  readonly tetherSignal: Summary
  readonly raw: Summary
}

/** Scenario 2: a token every 2 ms; tokens the server wrote after the abort. */
export const fullSpeedAbort = async (trials: number): Promise<FullSpeedResult> => {
  const results = await runBoth({ interval: 2, tokens: 2000, tokensBefore: 50, waitMillis: 0, trials })
  return {
    tether: summarize(results.tether.map((t) => t.tokensAfterAbort)),
    tetherSignal: summarize(results.tetherSignal.map((t) => t.tokensAfterAbort)),
    raw: summarize(results.raw.map((t) => t.tokensAfterAbort))
  }
}
