import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { FakeAnthropic } from "@tether/testing"
import { cleanEnv, readmeOutput, runProgram } from "./support/programs.js"

// The programs of the README's "Use Tether in your project", run as a user runs them: `tsx <file>`, offline.
describe("README: Use Tether in your project", () => {
  it.live("the offline program prints what the README says: the run's events, the cancel, nothing committed", () =>
    Effect.gen(function* () {
      const { code, stdout, stderr } = yield* runProgram("src/offline.ts")
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
      expect(stdout).toBe(readmeOutput("src/offline.ts"))
    })
  )

  // The fake answers as the API would: the stock, the order, then a slow answer that the program stops.
  const shopScript: FakeAnthropic.Script = ({ index }) =>
    index === 0
      ? FakeAnthropic.toolUse("check_stock", { item: "lamp" })
      : index === 1
        ? FakeAnthropic.toolUse("place_order", { item: "lamp", quantity: 2 })
        : FakeAnthropic.text("Two lamps are on their way to you.", { interval: 500 })

  it.scopedLive("the same program on AnthropicModel prints the same events, and its Stop closes the socket", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make(shopScript)
      const env = cleanEnv({ ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: fake.url })
      const { code, stdout, stderr } = yield* runProgram("src/anthropic.ts", env)
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
      expect(stdout).toBe(readmeOutput("src/offline.ts"))
      const requests = yield* fake.requests
      expect(requests.map((request) => request.status)).toEqual([200, 200, 200])
      expect(requests[0]?.request?.tools?.map((tool) => tool.name)).toEqual(["check_stock", "place_order"])
      const answer = requests[2]
      expect(answer?.closedAt).toBeDefined()
      expect(answer?.isFinished).toBe(false)
    })
  )

  it.live("without ANTHROPIC_API_KEY it prints one line: the variable, where to get a key, how to run offline", () =>
    Effect.gen(function* () {
      const { code, stdout, stderr } = yield* runProgram("src/anthropic.ts")
      expect(code).toBe(0)
      expect(stdout).toBe("")
      const lines = stderr.trimEnd().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^ANTHROPIC_API_KEY is not set: create a key at https:\/\/console\.anthropic\.com\//)
      expect(lines[0]).toContain("ScriptedModel")
    })
  )

  it.scopedLive("with a key the API rejects, the run fails with one line saying so, and nothing is committed", () =>
    Effect.gen(function* () {
      const fake = yield* FakeAnthropic.make([FakeAnthropic.httpError(401, { message: "invalid x-api-key" })])
      const env = cleanEnv({ ANTHROPIC_API_KEY: "sk-ant-revoked", ANTHROPIC_BASE_URL: fake.url })
      const { code, stdout } = yield* runProgram("src/anthropic.ts", env)
      expect(code).toBe(0)
      const failed = stdout.split("\n").filter((line) => line.includes("AuthenticationError"))
      expect(failed).toHaveLength(1)
      expect(failed[0]).toMatch(/^AuthenticationError: the Anthropic API rejected the API key \(invalid x-api-key\)/)
      expect(failed[0]).toContain("https://console.anthropic.com/settings/keys")
      expect(stdout).toContain(`RunFailed\n${failed[0]}\norders committed: 0\n`)
    })
  )
})
