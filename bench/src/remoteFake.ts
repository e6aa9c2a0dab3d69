/** The parent's side of `remoteFakeMain.ts`: starts it, reads its lines, waits for what it reports. */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { nodeArgs } from "./child.js"
import { serverCommand } from "./cpus.js"

interface Line {
  readonly url?: string
  readonly index?: number
  readonly tokens?: number
  readonly closedAt?: number
  readonly tokenTimes?: ReadonlyArray<number>
}

/** What the server reports in `summary` mode. */
export interface Summary {
  readonly requests: number
  /** Requests that have written at least one token. */
  readonly started: number
  /** Requests whose response finished or whose connection closed. */
  readonly ended: number
  readonly inFlight: number
  /** Absolute time (ms) the last request ended. */
  readonly lastEndedAt: number
}

export interface RemoteFake {
  readonly url: string
  /** Requests the server has seen so far. */
  readonly requestCount: () => number
  readonly tokensAtLeast: (index: number, count: number) => Promise<void>
  /** Absolute time (ms) the server saw request `index`'s connection close, and the times it wrote each token. */
  readonly closed: (index: number) => Promise<{ readonly closedAt: number; readonly tokenTimes: ReadonlyArray<number> }>
  readonly close: () => Promise<void>
}

export interface RemoteSummaryFake {
  readonly url: string
  /** Waits until `total` requests have written a token (they are streaming). */
  readonly started: (total: number) => Promise<Summary>
  /** Waits until `total` requests have ended and no response is in flight. (After an abort Node's fetch may open
   * one spare idle keep-alive socket that carries no request and closes itself after ~4 s: undici#5845; not
   * counted.) */
  readonly quiesced: (total: number) => Promise<Summary>
  readonly close: () => Promise<void>
}

/** The current absolute time in ms, comparable with the server's. */
export const now = () => performance.timeOrigin + performance.now()

const spawnFake = (args: ReadonlyArray<string>) =>
  new Promise<{
    readonly url: string
    readonly lines: Array<Line & Partial<Summary>>
    readonly waitFor: <A>(select: () => A | undefined) => Promise<A>
    readonly close: () => Promise<void>
  }>((resolve, reject) => {
    const [command, commandArgs] = serverCommand(process.execPath, [...nodeArgs("remoteFakeMain"), ...args])
    const child = spawn(command, commandArgs, { stdio: ["pipe", "pipe", "inherit"] })
    const lines: Array<Line & Partial<Summary>> = []
    const waiters = new Set<() => void>()
    const waitFor = <A>(select: () => A | undefined) =>
      new Promise<A>((done) => {
        const check = () => {
          const value = select()
          if (value === undefined) return
          waiters.delete(check)
          done(value)
        }
        waiters.add(check)
        check()
      })
    const close = () =>
      new Promise<void>((done) => {
        child.once("exit", () => done())
        child.stdin!.end()
      })
    createInterface({ input: child.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as Line & Partial<Summary>
      lines.push(line)
      if (line.url !== undefined) resolve({ url: line.url, lines, waitFor, close })
      waiters.forEach((check) => check())
    })
    child.once("error", reject)
  })

/** A server whose streams write `tokens` tokens, one every `interval` ms, reporting each request. */
export const start = async (interval: number, tokens: number): Promise<RemoteFake> => {
  const { url, lines, waitFor, close } = await spawnFake([String(interval), String(tokens)])
  return {
    url,
    requestCount: () => new Set(lines.flatMap((l) => (l.index === undefined ? [] : [l.index]))).size,
    tokensAtLeast: (index, count) =>
      waitFor(() => (lines.some((l) => l.index === index && (l.tokens ?? 0) >= count) ? true : undefined)).then(
        () => undefined
      ),
    closed: (index) =>
      waitFor(() => {
        const line = lines.find((l) => l.index === index && l.closedAt !== undefined)
        return line === undefined ? undefined : { closedAt: line.closedAt!, tokenTimes: line.tokenTimes ?? [] }
      }),
    close
  }
}

/**
 * The same server for many requests: it reports counts (`Summary`), not each request. With `rootTool`, a
 * request whose system prompt is not "sub" gets a call of that tool.
 */
export const startSummary = (interval: number, tokens: number, rootTool?: string): Promise<RemoteSummaryFake> =>
  summaryFake([String(interval), String(tokens), "summary", ...(rootTool === undefined ? [] : [rootTool])])

/** The two-turn server of the overhead scenario (a call of `echo`, then text), reporting counts. */
export const startTwoTurn = (): Promise<RemoteSummaryFake> => summaryFake(["0", "0", "two-turn"])

const summaryFake = async (args: ReadonlyArray<string>): Promise<RemoteSummaryFake> => {
  const { url, lines, waitFor, close } = await spawnFake(args)
  const latest = (): Summary | undefined => {
    const line = lines[lines.length - 1]
    return line?.requests === undefined ? undefined : (line as Summary)
  }
  /** Waits until the newest summary satisfies `done`, and returns it. */
  const waitUntil = (done: (summary: Summary) => boolean) =>
    waitFor(() => {
      const summary = latest()
      return summary !== undefined && done(summary) ? summary : undefined
    })
  return {
    url,
    started: (total) => waitUntil((summary) => summary.started >= total),
    quiesced: (total) => waitUntil((summary) => summary.ended >= total && summary.inFlight === 0),
    close
  }
}
