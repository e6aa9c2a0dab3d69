// Steps with a one-line result and a timing each, and child processes whose output is kept for when they fail.
import { spawn } from "node:child_process"
import { performance } from "node:perf_hooks"

/** A failed step: its message, and the output of the command that failed, printed below the step's line. */
export class StepError extends Error {
  constructor(message, output = "") {
    super(message)
    this.output = output
  }
}

const children = new Set()

/** Ends every child process still running (each leads its own process group), e.g. background installs. */
export const stopChildren = () => {
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
}

/**
 * Runs `command` with `args`; resolves with its combined output, rejects with a StepError holding that output when
 * it exits non-zero or outlives `timeout` milliseconds.
 */
export const run = (command, args, { cwd, env = process.env, timeout = 10 * 60_000 } = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true })
    children.add(child)
    let output = ""
    child.stdout.on("data", (chunk) => (output += chunk))
    child.stderr.on("data", (chunk) => (output += chunk))
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeout / 1000} s)`
      process.kill(-child.pid, "SIGKILL")
    }, timeout)
    child.on("error", (error) => {
      clearTimeout(timer)
      children.delete(child)
      reject(new StepError(`${command} could not start: ${error.message}`))
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      if (code === 0) resolve(output)
      else reject(new StepError(`${[command, ...args].join(" ")} exited ${code ?? signal}`, output))
    })
  })

/** The last non-empty line of a command's output: the programs print their summary last. */
export const lastLine = (output) =>
  output
    .trim()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .at(-1) ?? ""

const timings = []
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`

const print = (name, ms, error, result) => {
  timings.push([name, ms])
  if (error === undefined) {
    console.log(`ok   ${name} [${seconds(ms)}]: ${result}`)
  } else {
    console.log(`FAIL ${name} [${seconds(ms)}]: ${error.message}`)
    const output = error instanceof StepError ? error.output : (error.stack ?? "")
    if (output.trim() !== "") console.log(output.replace(/^/gm, "     | "))
  }
}

/** Runs one step now; prints its line; throws on failure (after printing what failed). */
export const step = async (name, body) => {
  const started = performance.now()
  try {
    const result = await body()
    print(name, performance.now() - started, undefined, result)
    return result
  } catch (error) {
    print(name, performance.now() - started, error)
    throw new StepError(`${name} failed`)
  }
}

/**
 * Starts a step in the background (an install, say) and returns a function that waits for it and prints its line
 * with its own duration. A failure is reported when it is awaited.
 */
export const background = (name, body) => {
  const started = performance.now()
  const outcome = body().then(
    (result) => ({ result, ms: performance.now() - started }),
    (error) => ({ error, ms: performance.now() - started })
  )
  let awaited
  return () =>
    (awaited ??= outcome.then(({ result, error, ms }) => {
      print(`${name} (in the background)`, ms, error, result)
      if (error !== undefined) throw new StepError(`${name} failed`)
      return result
    }))
}

/** Every step's time, longest first. */
export const printTimings = (totalMs) => {
  console.log("\ntimings:")
  for (const [name, ms] of [...timings].sort((a, b) => b[1] - a[1]))
    console.log(`  ${seconds(ms).padStart(8)}  ${name}`)
  console.log(`  ${seconds(totalMs).padStart(8)}  total (wall clock; background steps overlap)`)
}
