/**
 * Runs the README's program on the Anthropic API (extracted by check.mjs into src/readme.ts, compiled to
 * dist/readme.js) with plain node, its model being the fake Anthropic server (`AnthropicModel.layerConfig` reads
 * ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL), scripted as the README's offline model: the stock, the order, then a
 * slow answer that the program stops. It must exit 0 within 30 seconds, with the order rolled back and none committed.
 */
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { FakeAnthropic } from "@tether/testing"

const fake = await FakeAnthropic.start(({ index }) =>
  index === 0
    ? FakeAnthropic.toolUse("check_stock", { item: "lamp" })
    : index === 1
      ? FakeAnthropic.toolUse("place_order", { item: "lamp", quantity: 2 })
      : FakeAnthropic.text("Two lamps are on their way to you.", { interval: 500 })
)
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
  const lines = printed.split("\n")
  if (!lines.includes("UserAbort: 1 write rolled back") || lines.at(-1) !== "orders committed: 0") {
    throw new Error("README program: the order was not rolled back, or something was committed")
  }
  console.log(`README program: exit 0, ${fake.requestCount} model request(s), printed "${lines.at(-1)}"`)
} finally {
  await fake.close()
}
