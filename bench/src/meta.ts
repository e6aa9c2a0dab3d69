/** Where and with what a run was measured: the date, the machine, Node, and the versions of every side's packages. */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The packages whose versions a reader needs to judge the figures. */
const packages = [
  "@anthropic-ai/sdk",
  "effect",
  "@effect/platform",
  "@effect/platform-node",
  "ai",
  "@ai-sdk/anthropic",
  "@langchain/anthropic",
  "@langchain/core",
  "@effect/ai",
  "@effect/ai-anthropic"
]

const benchDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The installed version of `name`, as the bench resolves it (its `package.json`, found from its entry point). */
const versionOf = (name: string): string => {
  try {
    let dir = path.dirname(fileURLToPath(import.meta.resolve(name)))
    while (dir !== path.dirname(dir)) {
      const file = path.join(dir, "package.json")
      if (fs.existsSync(file)) {
        const json = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string }
        if (json.name === name && json.version !== undefined) return json.version
      }
      dir = path.dirname(dir)
    }
  } catch {
    // not installed
  }
  return "?"
}

export interface Meta {
  readonly date: string
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly os: string
  }
  readonly node: string
  readonly versions: Readonly<Record<string, string>>
}

export const meta = (): Meta => ({
  date: new Date().toISOString(),
  machine: {
    cpu: os.cpus()[0]?.model.trim() ?? "?",
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`
  },
  node: process.version,
  versions: Object.fromEntries(packages.map((name) => [name, versionOf(name)]))
})

export const benchPath = (...parts: ReadonlyArray<string>): string => path.join(benchDir, ...parts)
