import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { FakeAnthropic } from "@tether/testing"
import * as OfflineScript from "../src/OfflineScript.js"
import { SessionClient as Client } from "@tether/testing"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/**
 * Starts `tsx src/main.ts` as `pnpm start` does, with no configuration but a
 * free port and a temporary database; resolves with the port it announced.
 */
const startMain = (extraEnv: Readonly<Record<string, string>> = {}) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly port: number
      readonly model: string
      readonly child: ReturnType<typeof spawn>
      readonly output: () => string
      readonly dir: string
    }>((resume) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-main-"))
      let isStarted = false
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", CHAT_DB_FILE: path.join(dir, "chat.db") }
      delete env["ANTHROPIC_API_KEY"]
      delete env["ANTHROPIC_BASE_URL"]
      delete env["DATABASE_URL"]
      Object.assign(env, extraEnv)
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { cwd: root, env })
      let output = ""
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /Tether chat server on http:\/\/localhost:(\d+) \(model: (.+)\)/.exec(output)
        if (match !== null && !isStarted) {
          isStarted = true
          resume(Effect.succeed({ port: Number(match[1]), model: match[2]!, child, output: () => output, dir }))
        }
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      child.on("exit", (code) => {
        if (!isStarted) resume(Effect.dieMessage(`main exited early (${code}):\n${output}`))
      })
    }),
    ({ child, dir }) =>
      Effect.sync(() => {
        if (child.exitCode === null) child.kill("SIGKILL")
        fs.rmSync(dir, { recursive: true, force: true })
      })
  )

describe("pnpm start (src/main.ts)", () => {
  it.scopedLive("starts with zero config, serves a run, and on SIGTERM ends it with Shutdown and exits", () =>
    Effect.gen(function* () {
      const { child, model, output, port } = yield* startMain().pipe(Effect.timeout("60 seconds"))
      expect(model).toBe("offline fake")
      const page = yield* Client.requestJson({ port, method: "GET", path: "/" })
      expect(page.status).toBe(200)
      const cookie = String(page.headers["set-cookie"]).split(";")[0]!
      const stream = yield* Client.openEventStream({
        port,
        method: "POST",
        path: "/api/sessions/main-1/messages",
        headers: { cookie },
        body: JSON.stringify({ message: "Order a lamp" })
      })
      yield* stream
        .waitFor((events) => events.some((e) => e.event === "ToolStarted"))
        .pipe(Effect.timeout("20 seconds"))

      const signalledAt = performance.now()
      const exited = Effect.async<number | null>((resume) => {
        child.once("exit", (code) => resume(Effect.succeed(code)))
      })
      child.kill("SIGTERM")
      const code = yield* exited.pipe(Effect.timeout("15 seconds"))
      const exitMillis = performance.now() - signalledAt
      yield* Effect.logInfo(`SIGTERM -> process exited in ${exitMillis.toFixed(0)} ms`)
      expect(code).toBe(0)
      const events = yield* stream.ended.pipe(Effect.timeout("5 seconds"))
      expect(events.at(-1)).toMatchObject({ event: "RunCancelled", data: { reason: { _tag: "Shutdown" } } })
      expect(output()).toMatch(/shutting down: cancelling 1 running run/)
    })
  )

  it.scopedLive("with ANTHROPIC_API_KEY it talks to the Anthropic API (here a fake at ANTHROPIC_BASE_URL)", () =>
    Effect.gen(function* () {
      const api = yield* FakeAnthropic.make(OfflineScript.make({ interval: 5, answerWords: 5 }))
      const { model, port } = yield* startMain({ ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: api.url }).pipe(
        Effect.timeout("60 seconds")
      )
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
