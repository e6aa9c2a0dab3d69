/**
 * Scenarios 1 and 2: how fast a cancelled stream closes the model's socket, and how many tokens the server wrote
 * after the cancel, for every side: the raw SDK loop with an `AbortSignal` (the floor), a Tether run cancelled with
 * `run.requestCancel` and by the `AbortSignal` of `AgentRun.runPromise`, and each peer cancelled its own way. The sides
 * take turns, trial by trial, against one fake server in a process of its own.
 */
import * as RemoteFake from "./remoteFake.js"
import type { Client, Side } from "./sides/index.js"
import { sleep, summarize, within, type Summary } from "./stats.js"

interface Trial {
  readonly closeMillis: number
  readonly tokensAfterAbort: number
}

const trial = async (fake: RemoteFake.RemoteFake, client: Client, tokensBefore: number, waitMillis: number) => {
  const index = fake.requestCount()
  const live = client.stream()
  await fake.tokensAtLeast(index, tokensBefore)
  await sleep(waitMillis)
  const t0 = RemoteFake.now()
  live.abort()
  const { closedAt, tokenTimes } = await fake.closed(index)
  await live.settled()
  return {
    closeMillis: closedAt - t0,
    tokensAfterAbort: tokenTimes.filter((time) => time > t0).length
  } satisfies Trial
}

/** Each side's trials, in turns: trial i of every side, the first side rotating, then trial i + 1. */
const runSides = async (
  sides: ReadonlyArray<Side>,
  options: {
    readonly interval: number
    readonly tokens: number
    readonly tokensBefore: number
    readonly waitMillis: number
    readonly trials: number
  }
) => {
  // The model server runs in a process of its own, as a real one does: what it sees is not delayed by our work.
  const fake = await RemoteFake.start(options.interval, options.tokens)
  const clients: Array<Client> = []
  const trials = sides.map(() => [] as Array<Trial>)
  try {
    for (const side of sides) clients.push(await side.connect(fake.url))
    for (let i = 0; i < options.trials; i++) {
      for (let k = 0; k < sides.length; k++) {
        const s = (i + k) % sides.length
        const what = `${sides[s]!.label}: abort trial ${i + 1}`
        trials[s]!.push(await within(trial(fake, clients[s]!, options.tokensBefore, options.waitMillis), 30_000, what))
      }
    }
  } finally {
    for (const client of clients) await client.close()
    await fake.close()
  }
  return trials
}

const bySide = (sides: ReadonlyArray<Side>, values: ReadonlyArray<ReadonlyArray<number>>) =>
  Object.fromEntries(sides.map((side, s) => [side.key, summarize(values[s]!)]))

export interface StalledResult {
  readonly gapMillis: number
  /** Milliseconds from the abort to the server seeing the socket close, by side key. */
  readonly sides: Readonly<Record<string, Summary>>
}

/** Scenario 1: abort mid-gap of a stream that writes a token every `gap` ms. */
export const stalledAbort = async (
  sides: ReadonlyArray<Side>,
  gapMillis: number,
  trials: number
): Promise<StalledResult> => {
  const results = await runSides(sides, {
    interval: gapMillis,
    tokens: 20,
    tokensBefore: 2,
    waitMillis: gapMillis / 2,
    trials
  })
  return {
    gapMillis,
    sides: bySide(
      sides,
      results.map((side) => side.map((t) => t.closeMillis))
    )
  }
}

export interface FullSpeedResult {
  /** Tokens the server wrote after the abort, by side key. */
  readonly sides: Readonly<Record<string, Summary>>
}

/** Scenario 2: a token every 2 ms; tokens the server wrote after the abort. */
export const fullSpeedAbort = async (sides: ReadonlyArray<Side>, trials: number): Promise<FullSpeedResult> => {
  const results = await runSides(sides, { interval: 2, tokens: 2000, tokensBefore: 50, waitMillis: 0, trials })
  return {
    sides: bySide(
      sides,
      results.map((side) => side.map((t) => t.tokensAfterAbort))
    )
  }
}
