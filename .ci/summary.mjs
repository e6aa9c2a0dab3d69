// Prints vitest's totals as one plain line: "N passed, N failed, N skipped".
import { readFileSync } from "node:fs"

const report = JSON.parse(readFileSync("test-artifacts/vitest.json", "utf8"))
console.log(
  `tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${report.numPendingTests + report.numTodoTests} skipped`
)
