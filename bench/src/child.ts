/** Runs a sibling entry point of the bench in a child process of its own (from the bundle, or through tsx). */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

/** Whether this process runs the bundle `pnpm bench` builds (else the TypeScript sources, through tsx). */
export const isBundled = import.meta.url.endsWith(".mjs")

/** The path of sibling entry point `name` ("scaleMain"), as this process runs: bundled or from the sources. */
export const entryPoint = (name: string): string =>
  fileURLToPath(new URL(isBundled ? `./${name}.mjs` : `./${name}.ts`, import.meta.url))

/** Node's arguments to run sibling entry point `name`, with `nodeFetch` loaded first (see there). */
export const nodeArgs = (name: string, nodeOptions: ReadonlyArray<string> = []): Array<string> => [
  ...nodeOptions,
  ...(isBundled ? [] : ["--import", "tsx"]),
  "--import",
  entryPoint("nodeFetch"),
  entryPoint(name)
]

/**
 * Runs entry point `name` with `args` in a fresh Node process (with `--expose-gc` and `nodeOptions`), and returns
 * the JSON lines it printed. Fails when it exits with another code than 0.
 */
export const runChild = (
  name: string,
  args: ReadonlyArray<string>,
  nodeOptions: ReadonlyArray<string> = []
): Promise<Array<unknown>> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs(name, ["--expose-gc", ...nodeOptions]), ...args], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const lines: Array<unknown> = []
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.startsWith("{")) lines.push(JSON.parse(line))
      else process.stdout.write(`${line}\n`)
    })
    child.once("error", reject)
    child.once("exit", (code) =>
      code === 0 ? resolve(lines) : reject(new Error(`${name} ${args.join(" ")} exited with ${code}`))
    )
  })
