/**
 * The load test, `pnpm soak --load`: the example chat server (`examples/chat-server`, SQLite, offline model) started
 * as a process of its own, and N runs started at once against it over real HTTP (default 1000: 500 callers, two
 * sessions each, every caller from a loopback address of its own, 127.1.x.y, so the per-address limit counts callers,
 * not the test). A third of the runs are stopped by a second request once their first event arrived, a third are
 * dropped (socket destroyed) then, a third are read to their end; each run also asks for its session's status
 * once streaming. Reports the starts by answer (200, 503 with `Retry-After`, 429, ...), the resets and the starts
 * not answered within 15 s, Stop and status p50 / p99, runs per second, the server's heap (after gc) before and
 * after, and the kernel's listen-queue overflows. Exit code 1 when a start was reset or not answered, a 503 came
 * without `Retry-After`, or no start was admitted. `--quick` (CI): 200 runs against the default cap.
 *
 * `pnpm soak --load [--quick] [--runs=N] [--callers=N] [--max-live-runs=N] [--max-queued-starts=N]
 * [--server-dir=PATH] [--cpu-prof=FILE]` (`--server-dir`: the chat server of another checkout, e.g. main's, to compare;
 * `--cpu-prof`: the server's CPU profile over the load, written to FILE, a `.cpuprofile`).
 *
 * @example
 * ```ts
 * import * as Load from "./Load.js"
 *
 * const exitCode = await Load.main(["--load", "--quick"])
 * ```
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Effect, Redacted } from "effect"
import { Auth } from "@tether/http"

const here = path.dirname(fileURLToPath(import.meta.url))
const secret = Redacted.make("load-test-secret-of-at-least-32-bytes!!")

/** @since 0.1.0 */
export interface Settings {
  readonly runs: number
  readonly callers: number
  readonly serverDir: string
  /** Extra environment of the server (`MAX_LIVE_RUNS`, `MAX_QUEUED_STARTS`). */
  readonly serverEnv: Readonly<Record<string, string>>
  /** How long a start may go without an answer. */
  readonly answerTimeoutMillis: number
  /** How long after a run's first event its Stop and status are sent (once the runs stream). */
  readonly controlDelayMillis: number
}

type Action = "stop" | "drop" | "finish"

interface RunResult {
  readonly action: Action
  /** HTTP status of the start, or `reset`, `no answer`, an error code. */
  readonly answer: string
  readonly retryAfter: string | undefined
  /** How long the Stop took to answer 200; `undefined` when none was sent (`isStopSent`) or it failed. */
  readonly stopMillis: number | undefined
  readonly isStopSent: boolean
  readonly statusMillis: number | undefined
  readonly isStatusSent: boolean
  /** `GET /info` (no session, no database) at the first event, and with the status: how busy the event loop is. */
  readonly infoMillis: number | undefined
  readonly lateInfoMillis: number | undefined
  /** The terminal event's name, for a run read to its end or stopped. */
  readonly terminal: string | undefined
  readonly endedAt: number
}

interface Server {
  readonly port: number
  readonly child: ChildProcess
  /** The server's heap after gc, and the CPU time it has used (user and system), in ms. */
  readonly probe: () => Promise<{ readonly heapUsed: number; readonly cpuMillis: number }>
  /** Starts the server's CPU profiler; `stopProfile` writes the profile to a file. */
  readonly startProfile: () => Promise<void>
  readonly stopProfile: (file: string) => Promise<void>
  readonly output: () => string
}

const argument = (argv: ReadonlyArray<string>, name: string): string | undefined =>
  argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)

const listenOverflows = (): number | undefined => {
  try {
    const lines = fs.readFileSync("/proc/net/netstat", "utf8").split("\n")
    const header = lines.find((line) => line.startsWith("TcpExt:"))?.split(/\s+/)
    const values = lines.filter((line) => line.startsWith("TcpExt:"))[1]?.split(/\s+/)
    const at = header?.indexOf("ListenOverflows") ?? -1
    return at < 0 || values === undefined ? undefined : Number(values[at])
  } catch {
    return undefined
  }
}

const startServer = (settings: Settings): Promise<Server> =>
  new Promise((resolve, reject) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-load-"))
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      CHAT_DB_FILE: path.join(dir, "chat.db"),
      SESSION_SECRET: Redacted.value(secret),
      ...settings.serverEnv
    }
    delete env["ANTHROPIC_API_KEY"]
    delete env["DATABASE_URL"]
    delete env["LOG_LEVEL"]
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", "--import", path.join(here, "heapProbe.ts"), "src/main.ts"],
      { cwd: settings.serverDir, env, stdio: ["ignore", "pipe", "pipe", "ipc"] }
    )
    let output = ""
    let isStarted = false
    const onData = (chunk: Buffer) => {
      // Keep the head (the announce line, any error) and the tail, not every run's line.
      output = output.length > 20_000 ? output.slice(0, 10_000) + output.slice(-10_000) : output
      output += chunk.toString()
      const match = /Tether chat server on http:\/\/localhost:(\d+)/.exec(output)
      if (match !== null && !isStarted) {
        isStarted = true
        /** Sends `message` to the probe and resolves with its first answer that has `key`. */
        const ask = <A>(message: unknown, key: string) =>
          new Promise<A>((resolveAsk) => {
            const onMessage = (answer: unknown) => {
              if (typeof answer !== "object" || answer === null || !(key in answer)) return
              child.off("message", onMessage)
              resolveAsk(answer as A)
            }
            child.on("message", onMessage)
            child.send(message as string)
          })
        resolve({
          port: Number(match[1]),
          child,
          output: () => output,
          probe: () => ask("heap", "heapUsed"),
          startProfile: () => ask("profile-start", "profileStarted"),
          stopProfile: (file) => ask({ profileStop: file }, "profileWritten")
        })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.on("exit", (code) => {
      fs.rmSync(dir, { recursive: true, force: true })
      if (!isStarted) reject(new Error(`the chat server exited early (${code}):\n${output}`))
    })
  })

/** Caller `index`'s loopback address: 127.1.x.y. */
const addressOf = (index: number) => `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`

const request = (
  port: number,
  options: { method: string; path: string; cookie: string; localAddress: string; body?: string }
) =>
  http.request({
    host: "127.0.0.1",
    port,
    method: options.method,
    path: options.path,
    localAddress: options.localAddress,
    agent: false,
    headers: {
      cookie: options.cookie,
      ...(options.body === undefined
        ? {}
        : { "content-type": "application/json", "content-length": Buffer.byteLength(options.body) })
    }
  })

/** Sends a small request and times its whole answer; `undefined` if it failed. */
const timed = (port: number, options: { method: string; path: string; cookie: string; localAddress: string }) =>
  new Promise<number | undefined>((resolve) => {
    const t0 = performance.now()
    const req = request(port, options)
    req.on("response", (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode === 200 ? performance.now() - t0 : undefined))
    })
    req.on("error", () => resolve(undefined))
    req.setTimeout(120_000, () => req.destroy())
    req.end()
  })

const drive = (port: number, settings: Settings, index: number, cookie: string): Promise<RunResult> =>
  new Promise((resolve) => {
    const caller = index % settings.callers
    const sessionId = `load-${caller}-${Math.floor(index / settings.callers)}`
    const localAddress = addressOf(caller)
    const action: Action = (["stop", "drop", "finish"] as const)[index % 3]!
    const body = JSON.stringify({ message: "Order a lamp" })
    let stopMillis: number | undefined
    let statusMillis: number | undefined
    let infoMillis: number | undefined
    let lateInfoMillis: number | undefined
    let isStopSent = false
    let isStatusSent = false
    let isSettled = false
    const settle = (answer: string, extra: Partial<RunResult> = {}) => {
      if (isSettled) return
      isSettled = true
      resolve({
        action,
        answer,
        retryAfter: undefined,
        stopMillis,
        isStopSent,
        statusMillis,
        isStatusSent,
        infoMillis,
        lateInfoMillis,
        terminal: undefined,
        endedAt: performance.now(),
        ...extra
      })
    }
    const req = request(port, {
      method: "POST",
      path: `/api/sessions/${sessionId}/messages`,
      cookie,
      localAddress,
      body
    })
    const noAnswer = setTimeout(() => {
      settle("no answer")
      req.destroy()
    }, settings.answerTimeoutMillis)
    req.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(noAnswer)
      settle(error.code === "ECONNRESET" ? "reset" : (error.code ?? error.message))
    })
    req.on("response", (res) => {
      clearTimeout(noAnswer)
      const answer = String(res.statusCode)
      if (res.statusCode !== 200) {
        res.resume()
        res.on("end", () => settle(answer, { retryAfter: res.headers["retry-after"] as string | undefined }))
        return
      }
      let text = ""
      let isFirst = true
      const pending: Array<Promise<void>> = []
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        text += chunk
        if (isFirst && text.includes("\n\n")) {
          isFirst = false
          const other = { cookie, localAddress }
          pending.push(
            timed(port, { ...other, method: "GET", path: "/info" }).then((ms) => {
              infoMillis = ms
            })
          )
          if (action === "drop") {
            res.destroy()
            void Promise.all(pending).then(() => settle(answer))
            return
          }
          // Stop and status once the runs stream, after the burst of starts.
          const later = new Promise<void>((resolveLater) =>
            setTimeout(() => {
              isStatusSent = true
              const probes = [
                timed(port, { ...other, method: "GET", path: `/api/sessions/${sessionId}` }).then((ms) => {
                  statusMillis = ms
                }),
                timed(port, { ...other, method: "GET", path: "/info" }).then((ms) => {
                  lateInfoMillis = ms
                })
              ]
              if (action === "stop") {
                isStopSent = true
                probes.push(
                  timed(port, { ...other, method: "POST", path: `/api/sessions/${sessionId}/cancel` }).then((ms) => {
                    stopMillis = ms
                  })
                )
              }
              void Promise.all(probes).then(() => resolveLater())
            }, settings.controlDelayMillis)
          )
          pending.push(later)
        }
        if (text.length > 4096) text = text.slice(-4096)
      })
      res.on("close", () => {
        const terminal = /event: (RunCompleted|RunCancelled|RunFailed)/.exec(text)?.[1]
        void Promise.all(pending).then(() => settle(answer, { terminal }))
      })
    })
    req.end(body)
  })

const quantile = (values: ReadonlyArray<number>, q: number) => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}

/** The quantiles of the answers of `sent` requests, and how many were answered. */
const millis = (values: ReadonlyArray<number>, sent: number) =>
  (values.length === 0
    ? "none answered"
    : `p50 ${quantile(values, 0.5).toFixed(0)} ms, p99 ${quantile(values, 0.99).toFixed(0)} ms, max ${quantile(values, 1).toFixed(0)} ms`) +
  ` (${values.length} of ${sent} answered 200)`

const count = <A>(values: ReadonlyArray<A>, key: (a: A) => string) => {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(key(value), (counts.get(key(value)) ?? 0) + 1)
  return Array.from(counts, ([k, n]) => `${k}: ${n}`).join(", ")
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs the load test; resolves with the exit code. @since 0.1.0 */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const isQuick = argv.includes("--quick")
  const runs = Number(argument(argv, "runs") ?? (isQuick ? 200 : 1000))
  const serverEnv: Record<string, string> = {}
  // The quick run (CI) puts a small cap under a burst four times its size, so refusals are exercised too.
  const maxLive = argument(argv, "max-live-runs")
  const maxQueued = argument(argv, "max-queued-starts")
  if (maxLive !== undefined) serverEnv["MAX_LIVE_RUNS"] = maxLive
  if (maxQueued !== undefined) serverEnv["MAX_QUEUED_STARTS"] = maxQueued
  const profileArgument = argument(argv, "cpu-prof")
  const profileFile = profileArgument === undefined ? undefined : path.resolve(profileArgument)
  const settings: Settings = {
    runs,
    callers: Number(argument(argv, "callers") ?? Math.ceil(runs / 2)),
    serverDir: path.resolve(argument(argv, "server-dir") ?? path.join(here, "..", "..", "examples", "chat-server")),
    serverEnv,
    answerTimeoutMillis: 15_000,
    controlDelayMillis: Number(argument(argv, "control-delay") ?? 3000)
  }
  console.log(
    `load: ${settings.runs} runs at once, ${settings.callers} callers, against ${settings.serverDir}` +
      (Object.keys(serverEnv).length > 0 ? ` (${JSON.stringify(serverEnv)})` : "") +
      `; load average ${os
        .loadavg()
        .map((n) => n.toFixed(2))
        .join(" ")}`
  )
  const server = await startServer(settings)
  try {
    const cookies = await Effect.runPromise(
      Effect.forEach(
        Array.from({ length: settings.callers }, (_, i) => i),
        (i) =>
          Effect.map(
            Auth.signCookieValue(secret, Auth.CallerId.make(`load-${i}`)),
            (value) => `${Auth.defaultCookieName}=${value}`
          )
      )
    )
    // One run first (dropped once streaming; session load-0-4, not one of the test's), so what the server sets up on
    // its first run is not counted as growth.
    await drive(server.port, { ...settings, callers: 1 }, 4, cookies[0]!)
    const before = await server.probe()
    const overflowsBefore = listenOverflows()
    if (profileFile !== undefined) await server.startProfile()
    const t0 = performance.now()
    const results = await Promise.all(
      Array.from({ length: settings.runs }, (_, i) => drive(server.port, settings, i, cookies[i % settings.callers]!))
    )
    const elapsed = (Math.max(...results.map((r) => r.endedAt)) - t0) / 1000
    const overflowsAfter = listenOverflows()
    if (profileFile !== undefined) {
      await server.stopProfile(profileFile)
      console.log(`server CPU profile of the load: ${profileFile}`)
    }
    await sleep(2000)
    const after = await server.probe()
    const admitted = results.filter((r) => r.answer === "200")
    const resets = results.filter((r) => r.answer === "reset").length
    const unanswered = results.filter((r) => r.answer === "no answer").length
    const refusedWithoutRetryAfter = results.filter((r) => r.answer === "503" && r.retryAfter === undefined).length
    const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`
    console.log(`starts by answer: ${count(results, (r) => r.answer)}`)
    console.log(
      `resets: ${resets}; not answered within ${settings.answerTimeoutMillis / 1000} s: ${unanswered}; ` +
        `503 without Retry-After: ${refusedWithoutRetryAfter}`
    )
    console.log(`admitted runs by action and end: ${count(admitted, (r) => `${r.action} ${r.terminal ?? "-"}`)}`)
    const stops = admitted.flatMap((r) => (r.stopMillis === undefined ? [] : [r.stopMillis]))
    const statuses = admitted.flatMap((r) => (r.statusMillis === undefined ? [] : [r.statusMillis]))
    console.log(
      `Stop (${settings.controlDelayMillis / 1000} s after the first event): ${millis(stops, admitted.filter((r) => r.isStopSent).length)}`
    )
    console.log(`status (with the Stop): ${millis(statuses, admitted.filter((r) => r.isStatusSent).length)}`)
    const infos = admitted.flatMap((r) => (r.infoMillis === undefined ? [] : [r.infoMillis]))
    const lateInfos = admitted.flatMap((r) => (r.lateInfoMillis === undefined ? [] : [r.lateInfoMillis]))
    console.log(`GET /info (no session, no database) at the first event: ${millis(infos, admitted.length)}`)
    console.log(`GET /info with the status: ${millis(lateInfos, admitted.filter((r) => r.isStatusSent).length)}`)
    console.log(
      `runs per second: ${(admitted.length / elapsed).toFixed(1)} (${admitted.length} admitted runs ended in ${elapsed.toFixed(1)} s)`
    )
    console.log(`server heap: ${mb(before.heapUsed)} before, ${mb(after.heapUsed)} after`)
    const cpu = after.cpuMillis - before.cpuMillis
    console.log(
      `server CPU: ${(cpu / 1000).toFixed(1)} s over the load, ${(cpu / Math.max(1, admitted.length)).toFixed(0)} ms per admitted run ` +
        `(refusals included), ${((cpu / (elapsed * 1000)) * 100).toFixed(0)}% of one core on average`
    )
    if (overflowsBefore !== undefined && overflowsAfter !== undefined) {
      console.log(`kernel listen-queue overflows during the load: ${overflowsAfter - overflowsBefore}`)
    }
    return resets + unanswered + refusedWithoutRetryAfter === 0 && admitted.length > 0 ? 0 : 1
  } finally {
    server.child.kill("SIGKILL")
  }
}
