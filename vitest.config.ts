import { defineConfig } from "vitest/config"

// Root options; the projects themselves are listed in vitest.workspace.ts.
export default defineConfig({
  test: {
    reporters: ["default", "json"],
    outputFile: { json: "test-artifacts/vitest.json" }
  }
})
