/** The parent's side of `remoteFakeMain.ts`: starts it, reads its lines, waits for what it reports. */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { createInterface } from "node:readline"

interface Line {
  readonly url?: string
  readonly index?: number
  readonly tokens?: number
  readonly closedAt?: number
  readonly tokenTimes?: ReadonlyArray<number>
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

/** The current absolute time in ms, comparable with the server's. */
export const now = () => performance.timeOrigin + performance.now()

export const start = (interval: number, tokens: number): Promise<RemoteFake> =>
  new Promise((resolve, reject) => {
    const main = fileURLToPath(new URL("./remoteFakeMain.ts", import.meta.url))
    const child = spawn(process.execPath, ["--import", "tsx", main, String(interval), String(tokens)], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    const lines: Array<Line> = []
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
    createInterface({ input: child.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as Line
      lines.push(line)
      if (line.url !== undefined) {
        resolve({
          url: line.url,
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
          close: () =>
            new Promise<void>((done) => {
              child.once("exit", () => done())
              child.stdin!.end()
            })
        })
      }
      waiters.forEach((check) => check())
    })
    child.once("error", reject)
  })
