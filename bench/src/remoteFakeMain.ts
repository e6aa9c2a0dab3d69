/**
 * The fake Anthropic server in a process of its own, as a real model server is: the bench's own work cannot
 * delay what this server sees, and its memory is not counted as the client's. Prints its URL, then JSON lines
 * with absolute times (`performance.timeOrigin + now`, ms). Per request (default): when it has written tokens
 * and when its connection closed. In `summary` mode (thousands of requests): every 5 ms that something changed,
 * how many requests have written a token, how many have ended, how many responses are in flight, and when the
 * last one ended. With a tool name as the fifth argument, a request whose system prompt is not "sub" gets a
 * call of that tool instead of text (the tree scenario's root agent). In `two-turn` mode (reported as in `summary`
 * mode) it answers the two-turn runs of the overhead scenario: a call of `echo`, then text.
 */
import { FakeAnthropic } from "@tether/testing"
import { twoTurnScript } from "./sides/common.js"

const interval = Number(process.argv[2] ?? "1000")
const words = Array.from({ length: Number(process.argv[3] ?? "20") }, (_, i) => `token${i} `)
const mode = process.argv[4]
const summary = mode === "summary" || mode === "two-turn"
const rootTool = process.argv[5]
const fake = await FakeAnthropic.start((request) =>
  mode === "two-turn"
    ? twoTurnScript(request)
    : rootTool !== undefined && request.body.system !== "sub"
      ? FakeAnthropic.toolUse(rootTool, {})
      : FakeAnthropic.text(words, { interval })
)
const absolute = (time: number) => performance.timeOrigin + time
const write = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
// The parent may exit first: a closed pipe ends this process quietly.
process.stdout.on("error", () => process.exit(0))

if (summary) {
  let state: FakeAnthropic.State | undefined
  // Keeps the newest state (cheap: the predicate never matches); counting happens on the timer.
  void fake.waitUntil((current) => {
    state = current
    return undefined
  })
  let last = ""
  setInterval(() => {
    if (state === undefined) return
    let started = 0
    let ended = 0
    let lastEndedAt = 0
    for (let index = 0; index < state.requestCount; index++) {
      const record = state.request(index)!
      if (record.tokensWritten > 0) started++
      const end = record.closedAt ?? record.finishedAt
      if (end !== undefined) {
        ended++
        lastEndedAt = Math.max(lastEndedAt, absolute(end))
      }
    }
    const line = JSON.stringify({ requests: state.requestCount, started, ended, inFlight: state.inFlight, lastEndedAt })
    if (line !== last) process.stdout.write(`${line}\n`)
    last = line
  }, 5).unref()
} else {
  const reported = new Map<number, { tokens: number; closed: boolean }>()
  void fake.waitUntil((state) => {
    for (let index = 0; index < state.requestCount; index++) {
      const record = state.request(index)!
      const seen = reported.get(index) ?? { tokens: 0, closed: false }
      if (record.tokensWritten > seen.tokens) {
        seen.tokens = record.tokensWritten
        write({ index, tokens: record.tokensWritten })
      }
      const end = record.closedAt ?? record.finishedAt
      if (end !== undefined && !seen.closed) {
        seen.closed = true
        write({ index, closedAt: absolute(end), tokenTimes: record.tokenTimes.map(absolute) })
      }
      reported.set(index, seen)
    }
    return undefined
  })
}
write({ url: fake.url })
process.stdin.on("end", () => void fake.close().then(() => process.exit(0)))
process.stdin.resume()
