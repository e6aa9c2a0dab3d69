import { defineConfig } from "vitest/config"

// Every package, example and the bench is a project with its own vitest.config.ts; `pnpm test` runs them all.
export default defineConfig({
  test: {
    projects: ["packages/*/vitest.config.ts", "examples/*/vitest.config.ts", "bench/vitest.config.ts"],
    reporters: ["default", "json"],
    // What a passing test prints (a server's start line, a measured figure) is shown only if it fails.
    silent: "passed-only",
    outputFile: { json: "test-artifacts/vitest.json" }
  }
})
