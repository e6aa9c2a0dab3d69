import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"

/** examples/readme, where the programs are. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const repository = path.resolve(root, "..", "..")

export interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The environment of a user's shell, less the model settings a developer may have exported. */
export const cleanEnv = (extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith("ANTHROPIC_")) delete env[name]
  return { ...env, ...extra }
}

/**
 * Runs `tsx <file>` (a path in examples/readme), as a user runs the program they pasted, in `cwd` (default
 * examples/readme); resolves when it exits.
 */
export const runProgram = (file: string, env: NodeJS.ProcessEnv = cleanEnv(), cwd = root): Effect.Effect<Finished> =>
  Effect.async<Finished>((resume) => {
    const child = spawn(path.join(root, "node_modules", ".bin", "tsx"), [path.join(root, file)], { cwd, env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** The block of a README (the root one by default) that follows `<!-- output: <file> -->`. */
export const readmeOutput = (file: string, readmePath = "README.md"): string => {
  const readme = fs.readFileSync(path.join(repository, readmePath), "utf8")
  const marker = `<!-- output: examples/readme/${file} -->\n\`\`\`text\n`
  const start = readme.indexOf(marker)
  if (start < 0) throw new Error(`${readmePath} has no output block for ${file}`)
  const body = readme.slice(start + marker.length)
  return body.slice(0, body.indexOf("```\n"))
}
