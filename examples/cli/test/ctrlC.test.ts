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

describe("the terminal demo", () => {
  it("Ctrl-C after the order was staged cancels the run and the order never lands", async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "tether-cli-"))
    const child = spawn(process.execPath, ["--import", tsx, main], {
      cwd,
      env: { ...process.env, ANTHROPIC_API_KEY: "" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no check_stock in time:\n${output}`)), 20_000)
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes("[tool] check_stock")) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    })
    child.kill("SIGINT")
    expect(await exited).toBe(0)
    expect(output).toContain("[tool] check_stock interrupted")
    expect(output).toContain("[write] rolled back 1 write(s) (the user pressed Stop)")
    expect(output).toContain("outcome: Cancelled; order in the database: no")
    fs.rmSync(cwd, { recursive: true, force: true })
  })
})
