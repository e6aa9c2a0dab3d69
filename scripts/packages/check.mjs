// pnpm check:packages: proves that Tether installs and runs outside the repository, from its packed tarballs and the
// npm registry only, on Node, Bun, Deno and workerd. See README.md beside this file. `--keep` keeps the temporary
// directory (it is always kept, and named, when a step fails).
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { background, lastLine, printTimings, run, step, StepError, stopChildren } from "./lib/steps.mjs"
import { inspect, libraryPackages, pack } from "./lib/tarballs.mjs"

const here = dirname(fileURLToPath(import.meta.url))
const repo = realpathSync(join(here, "..", ".."))
const keep = process.argv.includes("--keep")
const started = performance.now()

const work = mkdtempSync(join(realpathSync(tmpdir()), "tether-packages-"))
if (work.startsWith(repo)) throw new Error(`the temporary directory ${work} is inside the repository`)

/**
 * The environment of everything that stands for a user's machine: no npm_* / pnpm variables (pnpm sets them for
 * the script that runs this) and no directory of the repository on the PATH.
 */
const plainEnv = Object.fromEntries(
  Object.entries(process.env)
    .filter(([key]) => !/^(npm_|pnpm_|INIT_CWD$)/i.test(key))
    .map(([key, value]) =>
      key === "PATH"
        ? [
            key,
            value
              .split(delimiter)
              .filter((dir) => !dir.startsWith(repo))
              .join(delimiter)
          ]
        : [key, value]
    )
)

/**
 * The README's program on the Anthropic API ("Use Tether in your project"): the `ts` block after its
 * `<!-- file: examples/readme/src/anthropic.ts -->` marker, as the README shows it.
 */
const readmeProgram = () => {
  const marker = "<!-- file: examples/readme/src/anthropic.ts -->\n```ts\n"
  const readme = readFileSync(join(repo, "README.md"), "utf8")
  const start = readme.indexOf(marker)
  if (start < 0) throw new StepError(`README.md has no ts block after ${marker.split("\n")[0]}`)
  const body = readme.slice(start + marker.length)
  return body.slice(0, body.indexOf("```\n"))
}

/** A consumer project in the temporary directory: consumer/<kind>, the shared sources, the tarballs as file: specs. */
const makeProject = (kind, tarballs) => {
  const dir = join(work, kind)
  cpSync(join(here, "consumer", kind), dir, { recursive: true })
  cpSync(join(here, "consumer", "src"), join(dir, "src"), { recursive: true })
  const manifestFile = join(dir, "package.json")
  const manifest = JSON.parse(readFileSync(manifestFile, "utf8"))
  for (const [name, spec] of Object.entries(manifest.dependencies)) {
    if (spec !== "file:TARBALL") continue
    const tarball = tarballs.find((t) => t.name === name)
    if (tarball === undefined) throw new StepError(`no tarball of ${name}`)
    manifest.dependencies[name] = `file:${tarball.file}`
  }
  writeFileSync(manifestFile, JSON.stringify(manifest, null, 2))
  return dir
}

/** Plain `npm install`; then each @tether package must be a copy, not a link. */
const npmInstall = async (dir) => {
  const output = await run("npm", ["install", "--no-audit", "--no-fund"], {
    cwd: dir,
    env: plainEnv,
    timeout: 20 * 60_000
  })
  const tether = join(dir, "node_modules", "@tether")
  const installed = readdirSync(tether)
  const linked = installed.filter((name) => lstatSync(join(tether, name)).isSymbolicLink())
  if (linked.length > 0) throw new StepError(`linked, not installed: ${linked.join(", ")}`, output)
  return `${/added \d+ packages?/.exec(output)?.[0] ?? "installed"}; @tether/${installed.join(", @tether/")} copied from the tarballs`
}

const tsc = (dir, config) =>
  run(process.execPath, [join(dir, "node_modules", "typescript", "bin", "tsc"), "-p", config], {
    cwd: dir,
    env: plainEnv
  }).then(() => `tsc -p ${config}: no errors`)

const runProgram = (dir, command, args, env = plainEnv) =>
  run(command, args, { cwd: dir, env, timeout: 2 * 60_000 }).then(lastLine)

const main = async () => {
  console.log(`checking the packages in ${work}`)
  const packages = libraryPackages(repo)

  await step("clean build (pnpm build)", async () => {
    for (const pkg of packages) {
      rmSync(join(pkg.dir, "dist"), { recursive: true, force: true })
      rmSync(join(pkg.dir, "tsconfig.build.tsbuildinfo"), { force: true })
    }
    await run("pnpm", ["build"], { cwd: repo })
    return `${packages.length} packages built from nothing into packages/*/dist`
  })

  let tarballs = []
  await step("pack (pnpm pack)", async () => {
    tarballs = await pack(packages, join(work, "tarballs"))
    return `${tarballs.length} tarballs in ${join(work, "tarballs")}`
  })

  const inspected = new Map()
  await step(
    "tarball contents (no tests or build info, no workspace: range, imports declared, none of node: in core)",
    async () => {
      const lines = []
      const problems = []
      for (const tarball of tarballs) {
        const result = inspect(tarball)
        inspected.set(tarball.name, result)
        lines.push(`     ${result.line}`)
        problems.push(...result.problems.map((problem) => `${tarball.name}: ${problem}`))
      }
      if (problems.length > 0) throw new StepError(`${problems.length} problem(s)`, [...problems, ...lines].join("\n"))
      return `all clean\n${lines.join("\n")}`
    }
  )

  const runtimesDir = join(work, "runtimes")
  const portable = join(work, "portable")
  const nodeApp = join(work, "node")
  await step("consumer projects (outside the repository)", () => {
    cpSync(join(here, "runtimes"), runtimesDir, { recursive: true })
    makeProject("portable", tarballs)
    makeProject("node", tarballs)
    const example = readmeProgram()
    writeFileSync(join(nodeApp, "src", "readme.ts"), example)
    return `${portable}, ${nodeApp}, ${runtimesDir}; the README's example (${example.split("\n").length - 1} lines) in node/src/readme.ts`
  })

  // The installs go on in the background while the tarballs are linted.
  const runtimesInstalled = background("install bun, deno, esbuild, miniflare (npm ci)", () =>
    run("npm", ["ci", "--no-audit", "--no-fund"], { cwd: runtimesDir, env: plainEnv, timeout: 20 * 60_000 }).then(
      (output) => /added \d+ packages?/.exec(output)?.[0] ?? "installed"
    )
  )
  const portableInstalled = background("install the portable consumer (npm install)", async () => {
    const installed = await npmInstall(portable)
    // Nothing but effect: a peer that @tether/core or ScriptedModel gained would be installed here by npm.
    const effectPackages = join(portable, "node_modules", "@effect")
    if (existsSync(effectPackages)) {
      throw new StepError(`the core program's install has @effect/${readdirSync(effectPackages).join(", @effect/")}`)
    }
    return `${installed}; no @effect/* package`
  })
  const nodeInstalled = background("install the Node consumer (npm install)", () => npmInstall(nodeApp))

  // publint and attw side by side: each runs one tarball at a time.
  const lintPublint = step("publint --strict", async () => {
    const notes = []
    for (const tarball of tarballs) {
      const output = await run("pnpm", ["exec", "publint", "run", tarball.file, "--strict"], { cwd: repo })
      notes.push(
        ...output
          .split("\n")
          .filter((line) => line.trim() !== "" && !/^(Running publint|Unpacking|Linting|All good)/.test(line.trim()))
          .map((line) => `     ${tarball.name}: ${line.trim()}`)
      )
    }
    return `no errors or warnings in ${tarballs.length} tarballs${notes.length > 0 ? `\n${notes.join("\n")}` : ""}`
  })

  const lintTypes = step("attw --profile esm-only (every public module)", async () => {
    let entrypoints = 0
    for (const tarball of tarballs) {
      const extra = inspected.get(tarball.name).entrypoints
      entrypoints += extra.length + 1
      await run(
        "pnpm",
        ["exec", "attw", tarball.file, "--profile", "esm-only", "--no-color", "--include-entrypoints", ...extra],
        { cwd: repo }
      )
    }
    return `no problems in ${tarballs.length} tarballs, ${entrypoints} entrypoints (node16 from ESM, bundler)`
  })
  await Promise.all([lintPublint, lintTypes])

  await portableInstalled()
  await step("typecheck the core program (NodeNext, strict, no Node types, skipLibCheck off)", () =>
    tsc(portable, "tsconfig.json")
  )
  await step(
    "core program on Node (node)",
    async () => `node ${process.version}: ${await runProgram(portable, process.execPath, ["dist/core.js"])}`
  )
  await runtimesInstalled()
  const bin = (name) => join(runtimesDir, "node_modules", ".bin", name)
  await step("core program on Bun (bun run)", async () => {
    const version = (await run(bin("bun"), ["--version"], { env: plainEnv })).trim()
    return `bun ${version}: ${await runProgram(portable, bin("bun"), ["run", "--no-install", "dist/core.js"])}`
  })
  await step("core program on Deno (deno run, no permissions)", async () => {
    const env = { ...plainEnv, DENO_DIR: join(work, "deno-cache"), DENO_NO_UPDATE_CHECK: "1" }
    const version = (await run(bin("deno"), ["--version"], { env })).split(" (")[0]
    const args = ["run", "--no-prompt", "--no-lock", "--node-modules-dir=manual", "dist/core.js"]
    return `${version}: ${await runProgram(portable, bin("deno"), args, env)}`
  })
  await step("core program on workerd (miniflare, esbuild bundle)", () =>
    runProgram(runtimesDir, process.execPath, ["workerd.mjs", portable])
  )
  await step("minimal agent bundle size (esbuild, minified, effect external)", () =>
    runProgram(runtimesDir, process.execPath, ["bundleSize.mjs", portable, join(here, "bundle-budget.json")])
  )

  await nodeInstalled()
  await step("the Anthropic SDK's transport per runtime (esbuild, each runtime's conditions)", () =>
    runProgram(runtimesDir, process.execPath, ["transport.mjs", nodeApp])
  )
  await Promise.all([
    step("typecheck the Node programs (NodeNext, strict, skipLibCheck off)", () =>
      tsc(nodeApp, "tsconfig.nodenext.json")
    ),
    step("typecheck the Node programs (Bundler, strict, exactOptionalPropertyTypes)", () =>
      tsc(nodeApp, "tsconfig.bundler.json")
    )
  ])
  await step("Node program: ScriptedModel, fake Anthropic server, SQLite (node)", () =>
    runProgram(nodeApp, process.execPath, ["dist/node.js"])
  )
  await step("the README's program (node, model: the fake Anthropic server)", () =>
    runProgram(nodeApp, process.execPath, ["dist/readmeHarness.js"])
  )
}

try {
  await main()
  printTimings(performance.now() - started)
  if (keep) console.log(`kept ${work}`)
  else rmSync(work, { recursive: true, force: true })
  console.log("packages: every check passed")
} catch (error) {
  stopChildren()
  if (!(error instanceof StepError)) console.error(error)
  printTimings(performance.now() - started)
  console.log(`packages: FAILED (the temporary directory is kept: ${work})`)
  process.exitCode = 1
}
