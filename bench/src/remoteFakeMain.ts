/**
 * The fake Anthropic server in a process of its own, as a real model server is: the bench's own work cannot
 * delay what this server sees. Prints its URL, then one JSON line per request when it has written its first
 * tokens and when its connection closed, with absolute times (`performance.timeOrigin + now`, ms).
 */
import { FakeAnthropic } from "@tether/testing"

const interval = Number(process.argv[2] ?? "1000")
const words = Array.from({ length: Number(process.argv[3] ?? "20") }, (_, i) => `token${i} `)
const fake = await FakeAnthropic.start(() => FakeAnthropic.text(words, { interval }))
const absolute = (time: number) => performance.timeOrigin + time
const reported = new Map<number, { tokens: number; closed: boolean }>()
void fake.waitUntil((state) => {
  for (let index = 0; index < state.requestCount; index++) {
    const record = state.request(index)!
    const seen = reported.get(index) ?? { tokens: 0, closed: false }
    if (record.tokensWritten > seen.tokens) {
      seen.tokens = record.tokensWritten
      process.stdout.write(`${JSON.stringify({ index, tokens: record.tokensWritten })}\n`)
    }
    const end = record.closedAt ?? record.finishedAt
    if (end !== undefined && !seen.closed) {
      seen.closed = true
      const tokenTimes = record.tokenTimes.map(absolute)
      process.stdout.write(`${JSON.stringify({ index, closedAt: absolute(end), tokenTimes })}\n`)
    }
    reported.set(index, seen)
  }
  return undefined
})
process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`)
process.stdin.on("end", () => void fake.close().then(() => process.exit(0)))
process.stdin.resume()
