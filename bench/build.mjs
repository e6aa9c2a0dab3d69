// Bundles the benchmarks into bench/dist as plain JavaScript, the way a deployed build runs: tsx (which runs the
// TypeScript sources in development) keeps every function's name with a call per closure made, which costs a
// closure-heavy library like Tether time and heap that a production build does not pay. Tether's packages are
// bundled; every other package stays external, imported from where it is installed.
import * as esbuild from "esbuild"

const external = {
  name: "external-packages",
  setup(build) {
    build.onResolve({ filter: /^[^./#]/ }, async (args) => {
      if (args.path.startsWith("@tether/") || args.pluginData === "resolving") return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: "resolving"
      })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      return { path: resolved.path, external: true }
    })
  }
}

await esbuild.build({
  entryPoints: [
    "bench/src/main.ts",
    "bench/src/nodeFetch.ts",
    "bench/src/remoteFakeMain.ts",
    "bench/src/scaleMain.ts",
    "bench/src/profileMain.ts",
    "bench/src/sseClientMain.ts",
    "bench/src/coreHeapMain.ts",
    "bench/src/overheadMain.ts",
    "bench/src/scenarioMain.ts"
  ],
  outdir: "bench/dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  plugins: [external],
  logLevel: "warning"
})
