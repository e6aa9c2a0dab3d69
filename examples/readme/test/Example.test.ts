import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { SessionClient } from "@tether/testing"
import { cleanEnv, root } from "./support/programs.js"

const freePort = Effect.async<number>((resume) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const connects = (port: number) =>
  Effect.async<void, Error>((resume) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (error) => resume(Effect.fail(error)))
    return Effect.sync(() => socket.destroy())
  })

/**
 * The README's HTTP example as pasted, but on a free port rather than 3000 (a copy beside it, so that it resolves
 * the same packages); stopped with SIGTERM, as Ctrl-C would, when the scope closes.
 */
const startExample = Effect.gen(function* () {
  const port = yield* freePort
  const source = fs.readFileSync(path.join(root, "src", "http.ts"), "utf8")
  expect(source).toContain("{ port: 3000 }")
  const copy = path.join(root, "src", `.http-${port}.ts`)
  fs.writeFileSync(copy, source.replace("{ port: 3000 }", `{ port: ${port} }`))
  const child = spawn(process.execPath, ["--import", "tsx", copy], { cwd: root, env: cleanEnv() })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  yield* Effect.addFinalizer(() =>
    Effect.promise(() => {
      child.kill("SIGKILL")
      fs.rmSync(copy, { force: true })
      return exited
    })
  )
  // Until it listens.
  yield* connects(port).pipe(Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo("30 seconds"))))
  const stop = Effect.promise(() => {
    child.kill("SIGTERM")
    return exited
  })
  return { port, stop, output: () => output }
})

describe("README: Example", () => {
  it.scopedLive("the HTTP example streams a run, its Stop route cancels it and rolls the order back", () =>
    Effect.gen(function* () {
      const server = yield* startExample
      const auth = SessionClient.bearer("dev-token")
      const stream = yield* SessionClient.openEventStream({
        port: server.port,
        method: "POST",
        path: "/sessions/s1/messages",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ message: "Order two lamps" })
      })
      yield* stream.waitFor((events) => events.some((event) => event.event === "TextDelta"))
      const stop = yield* SessionClient.requestJson({
        port: server.port,
        method: "POST",
        path: "/sessions/s1/cancel",
        headers: auth
      })
      expect(stop.status).toBe(200)
      expect(stop.json).toMatchObject({
        sessionId: "s1",
        wasRunning: true,
        outcome: { _tag: "Cancelled", reason: { _tag: "UserAbort" }, writesRolledBack: 1 }
      })
      const events = yield* stream.ended
      expect(events.map((event) => event.event).slice(-2)).toEqual(["RolledBack", "RunCancelled"])
      expect(events.some((event) => event.event === "WriteStaged")).toBe(true)
      // Ctrl-C (SIGTERM here) drains and exits cleanly.
      expect(yield* server.stop).toBe(0)
    })
  )
})
