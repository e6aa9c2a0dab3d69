import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { FakeAnthropic } from "@tether/testing"
import { cleanEnv, readmeOutput, runProgram } from "./support/programs.js"

// The "Use" programs of the package READMEs, run as pasted, offline; each prints what its README says.
describe("package READMEs: Use", () => {
  it.live("@tether/core: the run commits the note, and the in-memory store shows it", () =>
    Effect.gen(function* () {
      const { code, stdout, stderr } = yield* runProgram("src/packages/core.ts")
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
      expect(stdout).toBe(readmeOutput("src/packages/core.ts", "packages/core/README.md"))
    })
  )

  it.live("@tether/sql: the run's write is in the SQLite file it made", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-readme-sql-"))
      const { code, stdout, stderr } = yield* runProgram("src/packages/sql.ts", cleanEnv(), dir).pipe(
        Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      )
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
      expect(stdout).toBe(readmeOutput("src/packages/sql.ts", "packages/sql/README.md"))
    })
  )

  it.scopedLive("@tether/anthropic: the answer of the model at ANTHROPIC_BASE_URL, or one line without a key", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.text("A fiber is a lightweight virtual thread.")])
      const env = cleanEnv({ ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: fake.url })
      const answered = yield* runProgram("src/packages/anthropic.ts", env)
      expect(answered).toEqual({ code: 0, stdout: "A fiber is a lightweight virtual thread.\n", stderr: "" })
      const [request] = yield* fake.requests
      expect(request?.request?.system).toBe("Answer in one short sentence.")
      const withoutKey = yield* runProgram("src/packages/anthropic.ts")
      expect(withoutKey.stdout).toBe("")
      expect(withoutKey.stderr).toMatch(/^ANTHROPIC_API_KEY is not set: [^\n]*\n$/)
    })
  )
})
