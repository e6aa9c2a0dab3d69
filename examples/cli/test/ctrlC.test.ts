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

const repository = fileURLToPath(new URL("../../..", import.meta.url))

/**
 * Starts the demo in a fresh directory (its own `.data/cli.db`); `output()` is stdout and stderr so far. With
 * `throughPnpm`, it runs as the README says, `pnpm --filter @tether/example-cli start` (in examples/cli), in a process
 * group of its own as in a terminal.
 */
const startDemo = (args: ReadonlyArray<string> = [], options: { readonly throughPnpm?: boolean } = {}) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "tether-cli-"))
  const [command, ...commandArgs] = options.throughPnpm
    ? ["pnpm", "--filter", "@tether/example-cli", "start", ...args]
    : [process.execPath, "--import", tsx, main, ...args]
  const child = spawn(command!, commandArgs, {
    cwd: options.throughPnpm ? repository : cwd,
    env: { ...process.env, ANTHROPIC_API_KEY: "" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.throughPnpm === true
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

  it("Ctrl-C on `pnpm --filter @tether/example-cli start`: the same, with exit 0 and no pnpm error", async () => {
    const demo = startDemo([], { throughPnpm: true })
    try {
      await demo.printed("[tool] check_stock")
      // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group (pnpm and node).
      process.kill(-demo.child.pid!, "SIGINT")
      expect(await demo.exited).toBe(0)
      const output = demo.output()
      expect(output).toContain("[run] cancelled: you pressed Ctrl-C")
      expect(output).toContain("outcome: Cancelled; order in the database: no")
      expect(output).not.toMatch(/ERR_PNPM|ELIFECYCLE|Command failed/)
    } finally {
      if (demo.child.exitCode === null && demo.child.signalCode === null) process.kill(-demo.child.pid!, "SIGKILL")
      demo.cleanup()
    }
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
