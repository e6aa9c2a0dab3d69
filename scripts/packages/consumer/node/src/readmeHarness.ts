/**
 * Runs the README's example (extracted by check.mjs into src/readme.ts, compiled to dist/readme.js) with plain node,
 * its model being the fake Anthropic server (`AnthropicModel.layerConfig` reads ANTHROPIC_API_KEY and
 * ANTHROPIC_BASE_URL). It must exit 0 within 30 seconds.
 */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { FakeAnthropic } from "@tether/testing"

const fake = await FakeAnthropic.start(FakeAnthropic.offline({ useTools: true }))
try {
  // Asynchronous: the fake answers from this process while the program runs.
  const { code, printed } = await new Promise<{ code: number | string; printed: string }>((resolve) =>
    execFile(
      process.execPath,
      [fileURLToPath(new URL("./readme.js", import.meta.url))],
      { env: { ...process.env, ANTHROPIC_API_KEY: "test", ANTHROPIC_BASE_URL: fake.url }, timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : (error.code ?? error.signal ?? 1), printed: `${stdout}${stderr}`.trim() })
    )
  )
  console.log(printed)
  if (code !== 0) throw new Error(`README program: exit ${code}`)
  const lastLine = printed.split("\n").at(-1) ?? ""
  console.log(`README program: exit 0, ${fake.requestCount} model request(s), printed "${lastLine}"`)
} finally {
  await fake.close()
}
