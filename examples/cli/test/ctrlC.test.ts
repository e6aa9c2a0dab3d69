import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { describe, expect, it } from "vitest"

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))
// vitest has no import.meta.resolve: resolve tsx from this package.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href

/** Starts the demo in a fresh directory (its own `.data/cli.db`); `output()` is stdout and stderr so far. */
const startDemo = (args: ReadonlyArray<string> = []) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "tether-cli-"))
  const child = spawn(process.execPath, ["--import", tsx, main, ...args], {
    cwd,
    env: { ...process.env, ANTHROPIC_API_KEY: "" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
  const printed = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" in time:\n${output}`)), 20_000)
      const check = () => {
        if (!output.includes(text)) return
        clearTimeout(timer)
        child.stdout.off("data", check)
        resolve()
      }
      child.stdout.on("data", check)
      check()
    })
  const cleanup = () => fs.rmSync(cwd, { recursive: true, force: true })
  return { child, exited, printed, output: () => output, cleanup }
}

describe("the terminal demo", () => {
  it("Ctrl-C after the order was staged cancels the run and the order never lands", async () => {
    const demo = startDemo()
    await demo.printed("[tool] check_stock")
    demo.child.kill("SIGINT")
    expect(await demo.exited).toBe(0)
    const output = demo.output()
    expect(output).toContain("[tool] check_stock interrupted")
    expect(output).toContain("[write] rolled back 1 write(s) (the user pressed Stop)")
    expect(output).toContain("[run] cancelled: you pressed Ctrl-C")
    expect(output).toContain("outcome: Cancelled; order in the database: no")
    demo.cleanup()
  })

  it("--stop-after cancels the run with a Timeout, and says so: not that the user pressed Stop", async () => {
    // The offline run takes over 5 s (check_stock alone takes 3 s): a 2 s deadline always ends it early.
    const demo = startDemo(["--stop-after", "2000"])
    expect(await demo.exited).toBe(0)
    const output = demo.output()
    expect(output).toContain("[run] cancelled: timed out after 2s (--stop-after)")
    expect(output).toMatch(/\[write\] rolled back \d write\(s\) \(the run passed its 2000 ms deadline\)/)
    expect(output).not.toMatch(/pressed (Stop|Ctrl-C)/)
    expect(output).toContain("outcome: Cancelled; order in the database: no")
    demo.cleanup()
  })
})
