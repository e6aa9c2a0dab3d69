// Packing the library packages with pnpm, and what must hold of each tarball.
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"
import { run, StepError } from "./steps.mjs"

/** The workspace's publishable packages: packages/* that are not private. */
export const libraryPackages = (repo) =>
  readdirSync(join(repo, "packages"))
    .map((dir) => ({ dir: join(repo, "packages", dir), manifest: join(repo, "packages", dir, "package.json") }))
    .filter(({ manifest }) => statSync(manifest, { throwIfNoEntry: false })?.isFile())
    .map(({ dir, manifest }) => ({ dir, ...JSON.parse(readFileSync(manifest, "utf8")) }))
    .filter((pkg) => pkg.private !== true)
    .map(({ dir, name, version }) => ({ dir, name, version }))

/**
 * `pnpm pack` (not `npm pack`: only pnpm applies `publishConfig.exports` and turns `workspace:` ranges into real
 * ones), then unpacks each tarball next to it for the checks.
 */
export const pack = async (packages, into) => {
  mkdirSync(into, { recursive: true })
  const tarballs = []
  for (const pkg of packages) {
    await run("pnpm", ["pack", "--pack-destination", into], { cwd: pkg.dir })
    const file = join(into, `${pkg.name.replace(/^@/, "").replace("/", "-")}-${pkg.version}.tgz`)
    if (!statSync(file, { throwIfNoEntry: false })) throw new StepError(`pnpm pack made no ${file}`)
    const unpacked = join(into, "unpacked", pkg.name)
    mkdirSync(unpacked, { recursive: true })
    await run("tar", ["-xzf", file, "-C", unpacked])
    tarballs.push({ ...pkg, file, root: join(unpacked, "package") })
  }
  return tarballs
}

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)]
  )

/** Files that have no business in a published package. */
const forbidden = [
  [/(^|\/)(test|tests|__tests__)\//, "a test directory"],
  [/\.(test|spec)\.[cm]?[jt]sx?$/, "a test file"],
  [/(^|\/)fixtures?\//, "a test fixture"],
  [/\.tsbuildinfo$/, "a TypeScript build-info file"],
  [/(^|\/)vitest\.config\./, "a vitest config"]
]

/** The module specifiers a file imports (static, dynamic, re-exports), comments aside. */
const importsOf = (file) =>
  ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((imported) => imported.fileName)

/** The files a conditional `imports` entry can resolve to. */
const targetsOf = (entry) =>
  entry === undefined || entry === null
    ? []
    : typeof entry === "string"
      ? [entry]
      : Object.values(entry).flatMap(targetsOf)

/** `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`. */
const packageOf = (specifier) =>
  specifier
    .split("/")
    .slice(0, specifier.startsWith("@") ? 2 : 1)
    .join("/")

/**
 * Size, file count and content rules of one unpacked tarball: no tests, fixtures or build info; no `workspace:`
 * range; exports that point at dist; every package it imports declared (a dependency or a peer), and each `#` import
 * in its `imports` with every target in the tarball; no `node:` import in @tether/core. Returns its line, its public modules (for attw) and the problems found.
 */
export const inspect = (tarball) => {
  const files = walk(tarball.root).map((file) => relative(tarball.root, file))
  const unpackedBytes = files.reduce((sum, file) => sum + statSync(join(tarball.root, file)).size, 0)
  const problems = files.flatMap((file) => {
    const match = forbidden.find(([pattern]) => pattern.test(file))
    return match === undefined ? [] : [`${file} is ${match[1]}`]
  })
  const manifestText = readFileSync(join(tarball.root, "package.json"), "utf8")
  const manifest = JSON.parse(manifestText)
  if (manifestText.includes("workspace:")) problems.push("package.json still has a workspace: range")
  if (manifest.exports?.["."]?.import === undefined) problems.push("package.json exports do not point at dist")
  const declared = new Set([
    manifest.name,
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {})
  ])
  const modules = files.filter((file) => /\.(js|ts)$/.test(file) && !file.endsWith(".d.ts"))
  for (const file of modules) {
    for (const specifier of importsOf(join(tarball.root, file))) {
      if (specifier.startsWith(".")) continue
      if (specifier.startsWith("#")) {
        // A subpath import of the package itself: declared in its `imports`, every target in the tarball.
        const targets = manifest.imports?.[specifier]
        if (targets === undefined) problems.push(`${file} imports ${specifier}, which package.json imports lacks`)
        for (const target of targetsOf(targets)) {
          if (!files.includes(target.replace(/^\.\//, ""))) {
            problems.push(`package.json imports ${specifier} -> ${target}, which is not in the tarball`)
          }
        }
        continue
      }
      if (specifier.startsWith("node:")) {
        if (tarball.name === "@tether/core") problems.push(`${file} imports ${specifier}`)
      } else if (!declared.has(packageOf(specifier))) {
        problems.push(`${file} imports ${specifier}, which is neither a dependency nor a peer`)
      }
    }
  }
  return {
    problems,
    entrypoints: files
      .filter((file) => /^dist\/[^/]+\.js$/.test(file) && file !== "dist/index.js")
      .map((file) => `./${file.slice("dist/".length, -".js".length)}`),
    line: `${tarball.name} ${(statSync(tarball.file).size / 1024).toFixed(1)} KiB packed, ${files.length} files, ${(unpackedBytes / 1024).toFixed(1)} KiB unpacked`
  }
}
