/**
 * `pnpm soak --leak`: does the server's heap come back after its runs are forgotten? Rounds of runs through the real
 * routes (`SessionRoutes`, a streamed start read to its end, a status request after), against one `FakeAnthropic`
 * that lives as long as the server (as in the example chat server's offline mode), with `retainEnded` and
 * `retainIdle` shortened to `--retain` (the fake keeps its latest 100 request records, as the chat server's does;
 * `--keep-requests=all` keeps every one, as both did before); after each round a wait past that retention (two sweeps), then the heap after
 * `gc()`. The verdict fits a least-squares line through the later half of the rounds (the first ones warm up):
 * `bounded` when it grows less than `--bound` bytes per run, else `growing`. `--snapshots` diffs heap snapshots of
 * the end of round 2 and of the last round by constructor: what the growth is made of.
 *
 * `pnpm soak --leak [--quick] [--rounds=N] [--runs=N] [--concurrency=N] [--retain=SECONDS] [--bound=BYTES]
 * [--keep-requests=N|all] [--snapshots]`
 *
 * @example
 * ```ts
 * import * as Leak from "./Leak.js"
 *
 * const exitCode = await Leak.main(["--leak", "--rounds=4", "--runs=20"])
 * ```
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { FakeAnthropic, SessionClient as Client } from "@tether/testing"
import { Effect, Logger, LogLevel, Schema } from "effect"
import * as HeapDiff from "./HeapDiff.js"
import { callerCount } from "./Plan.js"
import * as Server from "./Server.js"
import { heapUsed } from "./Heap.js"

/** @since 0.1.0 */
export interface Settings {
  readonly rounds: number
  readonly runsPerRound: number
  readonly concurrency: number
  readonly retainSeconds: number
  /** Most bytes a run may leave behind, on the slope of the later rounds, for the verdict `bounded`. */
  readonly boundBytesPerRun: number
  readonly snapshots: boolean
  /** Too few rounds to judge (`--quick`, for CI): the verdict is printed, only runs that did not complete fail it. */
  readonly isQuick: boolean
  /** The fake's `keepRequests` (as the example chat server sets it); `undefined` keeps every record. */
  readonly keepRequests: number | undefined
}

/** The settings `argv` asks for. @since 0.1.0 */
export const settingsOf = (argv: ReadonlyArray<string>): Settings => {
  const argument = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)
  const isQuick = argv.includes("--quick")
  return {
    rounds: Number(argument("rounds") ?? (isQuick ? 4 : 10)),
    runsPerRound: Number(argument("runs") ?? (isQuick ? 40 : 300)),
    concurrency: Number(argument("concurrency") ?? 20),
    retainSeconds: Number(argument("retain") ?? 3),
    boundBytesPerRun: Number(argument("bound") ?? 512),
    snapshots: argv.includes("--snapshots"),
    isQuick,
    keepRequests: argument("keep-requests") === "all" ? undefined : Number(argument("keep-requests") ?? 100)
  }
}

/**
 * The slope of the least-squares line through `values` (at x = 0, 1, 2...), in units of a value per step.
 *
 * @since 0.1.0
 */
export const slope = (values: ReadonlyArray<number>): number => {
  const n = values.length
  if (n < 2) return 0
  const meanX = (n - 1) / 2
  const meanY = values.reduce((a, b) => a + b, 0) / n
  let numerator = 0
  let denominator = 0
  values.forEach((y, x) => {
    numerator += (x - meanX) * (y - meanY)
    denominator += (x - meanX) ** 2
  })
  return numerator / denominator
}

const record = Tool.make({
  name: "record_note",
  description: "Records a note",
  input: Schema.Struct({ note: Schema.String }),
  output: Schema.String,
  handler: (input) =>
    Effect.as(AgentRun.stage(StagedWrites.upsert("notes", input.note, { note: input.note })), "recorded")
})

const agent = Agent.make({ name: "scribe", system: "Record what you are told.", tools: [record] })

/** A tool call, then, given its result, a reply in twenty chunks. */
const script: FakeAnthropic.Script = (request) => {
  const last = request.body.messages.at(-1)
  const hasToolResult =
    Array.isArray(last?.content) &&
    last.content.some((block: { readonly type: string }) => block.type === "tool_result")
  return hasToolResult
    ? FakeAnthropic.text(Array.from({ length: 20 }, (_, i) => `word${i} `))
    : FakeAnthropic.toolUse("record_note", { note: `note-${request.index}` })
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

const oneRun = (server: Server.Server, sessionId: string, caller: number) =>
  Effect.gen(function* () {
    const headers = { authorization: `Bearer ${Server.tokenOf(caller)}` }
    const stream = yield* Client.openEventStream({
      port: server.port,
      method: "POST",
      path: `/api/sessions/${sessionId}/messages`,
      headers,
      body: JSON.stringify({ message: "note this" })
    })
    const events = yield* stream.ended.pipe(Effect.timeout("20 seconds"), Effect.orDie)
    // The status route too (its answer is not judged: a session idle past a short `retainIdle` is already gone).
    yield* Client.requestJson({ port: server.port, method: "GET", path: `/api/sessions/${sessionId}`, headers })
    // What a run that did not complete ended with.
    const last = events.at(-1)?.event ?? `no event (status ${stream.status})`
    return last === "RunCompleted" ? undefined : last
  })

const program = (settings: Settings) =>
  Effect.gen(function* () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-leak-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const retain = `${settings.retainSeconds} seconds` as const
    const server = yield* Server.start({
      agent,
      filename: path.join(dir, "leak.db"),
      retainEnded: retain,
      retainIdle: retain
    })
    const fake = yield* FakeAnthropic.make(script, { keepRequests: settings.keepRequests })
    yield* server.useModel(
      yield* AnthropicModel.make({ apiKey: "leak-not-a-real-key", baseURL: fake.url, maxRetries: 0 })
    )
    // Past the retention, and the sweep after it (the sweeps run every `retain`, at least every second).
    const wait = Math.max(settings.retainSeconds, 1) * 2 + 1
    console.log(
      `tether soak --leak: ${settings.rounds} rounds x ${settings.runsPerRound} runs, ${settings.concurrency} at a ` +
        `time; retainEnded = retainIdle = ${settings.retainSeconds} s, a ${wait} s wait after each round; the fake ` +
        `keeps ${settings.keepRequests ?? "all its"} request records`
    )
    const baseline = yield* heapUsed
    console.log(`baseline: heap ${mb(baseline)}`)
    const heaps: Array<number> = []
    const notCompleted: Array<string> = []
    let early: string | undefined
    for (let round = 1; round <= settings.rounds; round++) {
      const ids = Array.from({ length: settings.runsPerRound }, (_, i) => (round - 1) * settings.runsPerRound + i)
      const completed = yield* Effect.forEach(ids, (n) => oneRun(server, `leak-${n}`, n % callerCount), {
        concurrency: settings.concurrency
      })
      for (const ending of completed) if (ending !== undefined) notCompleted.push(ending)
      yield* Effect.sleep(`${wait} seconds`)
      const heap = yield* heapUsed
      heaps.push(heap)
      const running = (yield* server.registry.running).length
      console.log(
        `round ${round}: heap ${mb(heap)} (${heap >= baseline ? "+" : ""}${mb(heap - baseline)} on the baseline), ` +
          `${running} runs registered as running, ${yield* fake.requestCount} model requests so far`
      )
      // Written now, read at the end: a census held in the heap would count in the next snapshot.
      if (settings.snapshots && round === 2) early = HeapDiff.snapshot()
    }
    const later = heaps.slice(Math.floor(heaps.length / 2))
    const perRun = slope(later) / settings.runsPerRound
    const isBounded = perRun < settings.boundBytesPerRun
    console.log(
      `verdict${settings.isQuick ? " (quick: too few rounds to judge)" : ""}: ${isBounded ? "bounded" : "growing"}: ${perRun.toFixed(0)} bytes per run on the least-squares slope ` +
        `of rounds ${heaps.length - later.length + 1}-${heaps.length} (bound ${settings.boundBytesPerRun}); ` +
        `${notCompleted.length} run(s) did not complete` +
        (notCompleted.length === 0
          ? ""
          : ` (${[...new Set(notCompleted)].map((e) => `${e} ${notCompleted.filter((x) => x === e).length}`).join(", ")})`)
    )
    if (early !== undefined) {
      const late = HeapDiff.snapshot()
      const grown = HeapDiff.diff(HeapDiff.census(early), HeapDiff.census(late))
      console.log(`grown from the end of round 2 to the end of round ${settings.rounds}, by constructor:`)
      console.log(HeapDiff.format(grown, 25))
    }
    return (isBounded || settings.isQuick) && notCompleted.length === 0 ? 0 : 1
  })

/** Runs the leak soak; resolves to the exit code (1 when the heap grows or a run did not complete). @since 0.1.0 */
export const main = (argv: ReadonlyArray<string>): Promise<number> =>
  Effect.runPromise(
    program(settingsOf(argv)).pipe(Effect.scoped, Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))
  )
