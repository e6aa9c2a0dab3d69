/**
 * `src/main.ts` as a real process: the secrets it refuses (one line, exit code 1), the random one it makes in
 * development (and says so), and the deadlines for slow clients it reads from the environment.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SessionClient as Client } from "@tether/testing"
import * as Raw from "../../../packages/http/test/support/rawClient.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

interface Main {
  /** Resolves with the port once the server announced it, or with the exit code and output if it exited first. */
  readonly started: Effect.Effect<
    { readonly _tag: "Listening"; readonly port: number } | { readonly _tag: "Exited"; readonly code: number | null }
  >
  readonly output: () => string
}

/** Starts `tsx src/main.ts` with `env` (and a free port, a temporary database, no Anthropic key); killed at scope end. */
const main = (env: Readonly<Record<string, string | undefined>>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-main-security-"))
      const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: "0", CHAT_DB_FILE: path.join(dir, "chat.db") }
      for (const name of ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DATABASE_URL", "SESSION_SECRET", "NODE_ENV"]) {
        delete childEnv[name]
      }
      for (const [name, value] of Object.entries(env)) if (value !== undefined) childEnv[name] = value
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { cwd: root, env: childEnv })
      let output = ""
      const started = Effect.async<
        | { readonly _tag: "Listening"; readonly port: number }
        | { readonly _tag: "Exited"; readonly code: number | null }
      >((resume) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString()
          const match = /Tether chat server on http:\/\/localhost:(\d+)/.exec(output)
          if (match !== null) resume(Effect.succeed({ _tag: "Listening", port: Number(match[1]) }))
        }
        child.stdout.on("data", onData)
        child.stderr.on("data", onData)
        child.on("exit", (code) => resume(Effect.succeed({ _tag: "Exited", code })))
      })
      return { child, dir, main: { started, output: () => output } satisfies Main }
    }),
    ({ child, dir }) =>
      Effect.sync(() => {
        if (child.exitCode === null) child.kill("SIGKILL")
        fs.rmSync(dir, { recursive: true, force: true })
      })
  ).pipe(Effect.map(({ main }) => main))

describe("pnpm start (src/main.ts): secrets and slow clients", () => {
  it.scopedLive('SESSION_SECRET="" or "a" stops it with one line saying how to make one (exit code 1)', () =>
    Effect.forEach(
      ["", "a"],
      (secret) =>
        Effect.gen(function* () {
          const server = yield* main({ SESSION_SECRET: secret })
          const ended = yield* server.started.pipe(Effect.timeout("60 seconds"))
          expect(ended).toStrictEqual({ _tag: "Exited", code: 1 })
          const lines = server
            .output()
            .split("\n")
            .filter((line) => line.trim() !== "")
          expect(lines).toEqual([
            `Cannot start: SESSION_SECRET has ${secret.length} bytes; it needs at least 32 (make one with: openssl rand -base64 32)`
          ])
        }),
      { concurrency: "unbounded", discard: true }
    )
  )

  it.scopedLive("in production a missing SESSION_SECRET stops it too", () =>
    Effect.gen(function* () {
      const server = yield* main({ NODE_ENV: "production" })
      expect(yield* server.started.pipe(Effect.timeout("60 seconds"))).toStrictEqual({ _tag: "Exited", code: 1 })
      expect(server.output()).toMatch(/^Cannot start: SESSION_SECRET has 0 bytes; .*openssl rand -base64 32\)\n$/)
    })
  )

  it.scopedLive("without SESSION_SECRET in development it signs with a random key and says so in one line", () =>
    Effect.gen(function* () {
      const server = yield* main({})
      const started = yield* server.started.pipe(Effect.timeout("60 seconds"))
      expect(started._tag).toBe("Listening")
      const notices = server
        .output()
        .split("\n")
        .filter((line) => line.includes("SESSION_SECRET"))
      expect(notices).toEqual([
        "SESSION_SECRET is not set: cookies are signed with a random key for this process only (make one with: openssl rand -base64 32)"
      ])
    })
  )

  it.scopedLive("HEADERS_TIMEOUT and BODY_TIMEOUT cut slow clients off; a long enough secret is taken", () =>
    Effect.gen(function* () {
      const server = yield* main({
        SESSION_SECRET: "a-secret-of-more-than-thirty-two-bytes",
        HEADERS_TIMEOUT: "1 second",
        BODY_TIMEOUT: "1 second"
      })
      const started = yield* server.started.pipe(Effect.timeout("60 seconds"))
      if (started._tag !== "Listening") return expect.fail(`main exited: ${server.output()}`)
      const page = yield* Client.requestJson({ port: started.port, method: "GET", path: "/" })
      const cookie = String(page.headers["set-cookie"]).split(";")[0]!
      const silent = yield* Raw.connect(started.port)
      yield* silent.write("GET / HTTP/1.1\r\nHost: x\r\n")
      const body = JSON.stringify({ message: "Order a lamp" })
      const trickling = yield* Raw.connect(started.port)
      yield* trickling.write(
        [
          "POST /api/sessions/slow/messages HTTP/1.1",
          "Host: x",
          `Cookie: ${cookie}`,
          "Content-Type: application/json",
          `Content-Length: ${body.length}`,
          "",
          ""
        ].join("\r\n")
      )
      yield* Effect.forkScoped(trickling.trickle(body, "1 second"))
      const [silentEnd, tricklingEnd] = yield* Effect.all([silent.closed, trickling.closed]).pipe(
        Effect.timeout("8 seconds")
      )
      expect(silentEnd.received).toMatch(/^HTTP\/1\.1 408 /)
      expect(tricklingEnd.received).toMatch(/^HTTP\/1\.1 408 [^]*"_tag":"RequestTimeout"/)
    })
  )
})
