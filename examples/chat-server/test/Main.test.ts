import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { FakeAnthropic } from "@tether/testing"
import * as OfflineScript from "../src/OfflineScript.js"
import { SessionClient as Client } from "@tether/testing"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const repository = path.resolve(root, "..", "..")

interface Started {
  readonly port: number
  readonly model: string
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Effect.Effect<number | null>
}

/**
 * Starts the chat server with no configuration but a free port and a temporary database; resolves with the port it
 * announced. By default `node --import tsx src/main.ts`, what `pnpm start` ends up running; `command` runs another
 * (e.g. `pnpm start` itself), in a process group of its own, as a terminal would.
 */
const startMain = (
  options: { readonly env?: Readonly<Record<string, string>>; readonly command?: ReadonlyArray<string> } = {}
) =>
  Effect.acquireRelease(
    Effect.async<Started>((resume) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-main-"))
      let isStarted = false
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", CHAT_DB_FILE: path.join(dir, "chat.db") }
      delete env["ANTHROPIC_API_KEY"]
      delete env["ANTHROPIC_BASE_URL"]
      delete env["DATABASE_URL"]
      delete env["LOG_LEVEL"]
      Object.assign(env, options.env)
      const [command, ...args] = options.command ?? [process.execPath, "--import", "tsx", "src/main.ts"]
      const child = spawn(command!, args, {
        cwd: options.command === undefined ? root : repository,
        env,
        detached: options.command !== undefined
      })
      let output = ""
      const exitCode = new Promise<number | null>((resolve) => child.once("exit", resolve))
      const started = (port: number, model: string): Started => ({
        port,
        model,
        child,
        output: () => output,
        exited: Effect.promise(() => exitCode)
      })
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /Tether chat server on http:\/\/localhost:(\d+) \(model: (.+)\)/.exec(output)
        if (match !== null && !isStarted) {
          isStarted = true
          resume(Effect.succeed(started(Number(match[1]), match[2]!)))
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code) => {
        fs.rmSync(dir, { recursive: true, force: true })
        if (!isStarted) resume(Effect.dieMessage(`main exited early (${code}):\n${output}`))
      })
    }),
    ({ child }) =>
      Effect.sync(() => {
        if (child.exitCode !== null || child.signalCode !== null) return
        if (child.spawnargs[0] === process.execPath) child.kill("SIGKILL")
        else process.kill(-child.pid!, "SIGKILL")
      })
  )

/** A visitor's cookie, and a message that starts a run; its event stream. */
const startRun = (port: number, sessionId: string) =>
  Effect.gen(function* () {
    const page = yield* Client.requestJson({ port, method: "GET", path: "/" })
    expect(page.status).toBe(200)
    const cookie = String(page.headers["set-cookie"]).split(";")[0]!
    return yield* Client.openEventStream({
      port,
      method: "POST",
      path: `/api/sessions/${sessionId}/messages`,
      headers: { cookie },
      body: JSON.stringify({ message: "Order a lamp" })
    })
  })

describe("pnpm start (src/main.ts)", () => {
  it.scopedLive("starts with zero config, serves a run, and on SIGTERM ends it with Shutdown and exits", () =>
    Effect.gen(function* () {
      const { child, exited, model, output, port } = yield* startMain().pipe(Effect.timeout("60 seconds"))
      expect(model).toBe("offline fake")
      const stream = yield* startRun(port, "main-1")
      yield* stream
        .waitFor((events) => events.some((e) => e.event === "ToolStarted"))
        .pipe(Effect.timeout("20 seconds"))

      const signalledAt = performance.now()
      child.kill("SIGTERM")
      const code = yield* exited.pipe(Effect.timeout("15 seconds"))
      const exitMillis = performance.now() - signalledAt
      yield* Effect.logInfo(`SIGTERM -> process exited in ${exitMillis.toFixed(0)} ms`)
      expect(code).toBe(0)
      const events = yield* stream.ended.pipe(Effect.timeout("5 seconds"))
      expect(events.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "Shutdown" } } })
      // The example's own lines: the run's start and end, then what the shutdown did; no library log lines.
      const runId = events[0]!.data.runId
      expect(output()).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d ${runId} started \\(session main-1\\)$`, "m"))
      expect(output()).toMatch(
        new RegExp(
          `^\\d\\d:\\d\\d:\\d\\d ${runId} cancelled: the server is shutting down \\(Shutdown\\) · \\d+ tokens( \\(\\d+ estimated\\))? · 0 writes rolled back · [\\d.]+ s$`,
          "m"
        )
      )
      expect(output()).toMatch(/^tether chat: shut down; 1 run cancelled \(Shutdown\), 0 writes rolled back$/m)
      expect(output()).not.toMatch(/INFO|level=/)
    })
  )

  it.scopedLive("a second signal during the shutdown does not cut it short: the process still exits with 0", () =>
    Effect.gen(function* () {
      const { child, exited, output, port } = yield* startMain().pipe(Effect.timeout("60 seconds"))
      const page = yield* Client.requestJson({ port, method: "GET", path: "/" })
      const cookie = String(page.headers["set-cookie"]).split(";")[0]!
      // A request whose body never finishes keeps the server closing until it closes the connection itself.
      const socket = yield* Effect.acquireRelease(
        Effect.async<net.Socket>((resume) => {
          const socket = net.connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
          socket.on("error", () => {})
        }),
        (socket) => Effect.sync(() => socket.destroy())
      )
      socket.write(
        `POST /api/sessions/main-slow/messages HTTP/1.1\r\nhost: localhost\r\ncookie: ${cookie}\r\n` +
          `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"message":`
      )
      child.kill("SIGTERM")
      yield* Effect.async<void>((resume) => {
        const check = () => {
          if (!output().includes("tether chat: shut down")) return
          child.stdout!.off("data", check)
          resume(Effect.void)
        }
        child.stdout!.on("data", check)
        check()
      }).pipe(Effect.timeout("10 seconds"))
      // The runs are done, the server still waits for that connection: what pnpm and tsx pass on arrives now.
      child.kill("SIGINT")
      child.kill("SIGTERM")
      expect(yield* exited.pipe(Effect.timeout("15 seconds"))).toBe(0)
      expect(child.signalCode).toBeNull()
    })
  )

  it.scopedLive(
    "Ctrl-C on `pnpm start`: the open page gets RunCancelled (Shutdown), one summary line, exit 0 and no pnpm error",
    () =>
      Effect.gen(function* () {
        const { child, exited, output, port } = yield* startMain({ command: ["pnpm", "start"] }).pipe(
          Effect.timeout("60 seconds")
        )
        const stream = yield* startRun(port, "main-ctrl-c")
        yield* stream
          .waitFor((events) => events.some((e) => e.event === "WriteStaged"))
          .pipe(Effect.timeout("30 seconds"))

        // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group (both pnpm, node).
        process.kill(-child.pid!, "SIGINT")
        expect(yield* exited.pipe(Effect.timeout("15 seconds"))).toBe(0)
        const events = yield* stream.ended.pipe(Effect.timeout("5 seconds"))
        expect(events.at(-1)).toMatchObject({
          event: "RunCancelled",
          data: { reason: { _tag: "Shutdown" }, writesRolledBack: 1 }
        })
        expect(output()).toMatch(/^tether chat: shut down; 1 run cancelled \(Shutdown\), 1 write rolled back$/m)
        expect(output()).not.toMatch(/ERR_PNPM|ELIFECYCLE|Command failed/)
      }),
    90_000
  )

  it.scopedLive("with ANTHROPIC_API_KEY it talks to the Anthropic API (here a fake at ANTHROPIC_BASE_URL)", () =>
    Effect.gen(function* () {
      const api = yield* FakeAnthropic.make(OfflineScript.make({ interval: 5, answerWords: 5 }))
      const { model, port } = yield* startMain({
        env: { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: api.url }
      }).pipe(Effect.timeout("60 seconds"))
      expect(model).toMatch(/^Anthropic API \(.+\)$/)
      const page = yield* Client.requestJson({ port, method: "GET", path: "/" })
      const cookie = String(page.headers["set-cookie"]).split(";")[0]!
      const stream = yield* Client.openEventStream({
        port,
        method: "POST",
        path: "/api/sessions/main-2/messages",
        headers: { cookie },
        body: JSON.stringify({ message: "Order a lamp" })
      })
      const events = yield* stream.ended.pipe(Effect.timeout("30 seconds"))
      expect(events.at(-1)?.event).toBe("RunCompleted")
      const requests = yield* api.requests
      expect(requests.length).toBeGreaterThanOrEqual(4)
      // The key reached the API (this SDK version sends it as a bearer token).
      const headers = requests[0]!.headers
      expect(headers["authorization"] ?? headers["x-api-key"]).toMatch(/^(Bearer )?test-key$/)
    })
  )
})
