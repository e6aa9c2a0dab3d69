/**
 * Scenario 7: the cost of streaming a run's events as Server-Sent Events. A server in this process streams runs of
 * many small text deltas (`ScriptedModel`: bursts of deltas emitted back to back, a millisecond apart) through
 * `@tether/http`'s `ServerSentEvents.response` (the events ready together written as one chunk) and through the
 * encoding it replaced (`sse/perEvent.ts`: one Schema-encoded frame and one write per event), on real HTTP. The
 * load comes from a process of its own, so the CPU time counted (`process.cpuUsage`) is the server's; the two
 * encoders take turns, block by block. Figures: events per CPU-second of the server (events/s on one core), socket
 * writes of the server (calls of `_write`/`_writev` on its sockets) and HTTP chunks per event; and, without HTTP,
 * events encoded per second by each encoder alone.
 */
import { createServer, type Server } from "node:http"
import type { Socket } from "node:net"
import { HttpRouter, HttpServer, HttpServerRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Logger, LogLevel, Scope, Stream } from "effect"
import { Agent, RunEvent, RunRegistry } from "@tether/core"
import { ServerSentEvents } from "@tether/http"
import { ScriptedModel } from "@tether/testing"
import { runChild } from "./child.js"
import type { LoadResult } from "./sse/client.js"
import * as PerEvent from "./sse/perEvent.js"

export interface SseSide {
  readonly runs: number
  readonly events: number
  /** Server CPU milliseconds (user + system) spent on these runs. */
  readonly cpuMillis: number
  readonly eventsPerCpuSecond: number
  readonly socketWrites: number
  readonly httpChunks: number
}

export interface SseResult {
  readonly deltasPerRun: number
  readonly concurrency: number
  readonly perEvent: SseSide
  readonly batched: SseSide
  /** Events encoded per second, without HTTP, by each encoder on its own. */
  readonly encodeOnly: { readonly perEvent: number; readonly batched: number }
}

const bursts = 40
const burstSize = 10
export const deltasPerRun = bursts * burstSize

const script: ScriptedModel.Script = [
  Array.from({ length: bursts }, () => [
    ScriptedModel.delay("1 millis"),
    ...ScriptedModel.text("word".repeat(burstSize), { chunks: burstSize })
  ]).flat()
]

/** Counts the writes the server's sockets make, whatever Node batched into each. */
const countingServer = (writes: { count: number }) => (): Server => {
  const server = createServer()
  server.on("connection", (socket: Socket & { _write: Function; _writev: Function }) => {
    const write = socket._write
    const writev = socket._writev
    socket._write = function (this: Socket, ...args: Array<unknown>) {
      writes.count++
      return write.apply(this, args)
    }
    socket._writev = function (this: Socket, ...args: Array<unknown>) {
      writes.count++
      return writev.apply(this, args)
    }
  })
  return server
}

const serve = async (writes: { count: number }) => {
  const agent = Agent.make({ name: "talker" })
  const route = Effect.gen(function* () {
    const { encoder, n } = yield* HttpRouter.params
    const registry = yield* RunRegistry.RunRegistry
    const run = yield* registry.start(`${encoder}-${n}`, agent, "talk")
    // As `SessionRoutes` streams a run: each event looked at on its way out.
    let isTerminalSent = false
    const events = Stream.tap(run.events, (event) =>
      Effect.sync(() => void (isTerminalSent ||= RunEvent.isTerminal(event)))
    )
    return encoder === "perEvent" ? PerEvent.response(events) : ServerSentEvents.response(events)
  }).pipe(Effect.zipLeft(HttpServerRequest.HttpServerRequest))
  const server = HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.post("/sse/:encoder/:n", route))).pipe(
    Layer.provide(Layer.merge(RunRegistry.layer({ retainEnded: "1 second" }), ScriptedModel.layer(script))),
    Layer.provideMerge(NodeHttpServer.layer(countingServer(writes), { port: 0, host: "127.0.0.1" })),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(server, scope).pipe(Effect.orDie))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return { port: address.port, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const encodeOnly = (events: number) => {
  const sample = Array.from(
    { length: 1000 },
    (_, i) => new RunEvent.TextDelta({ runId: "run_1", seq: i + 1, agent: "talker", text: "word" })
  )
  const utf8 = new TextEncoder()
  const rate = (encodeBatch: (batch: ReadonlyArray<RunEvent.RunEvent>) => void) => {
    const t0 = performance.now()
    for (let done = 0; done < events; done += burstSize) {
      const at = done % sample.length
      encodeBatch(sample.slice(at, at + burstSize))
    }
    return events / ((performance.now() - t0) / 1000)
  }
  const perEvent = (batch: ReadonlyArray<RunEvent.RunEvent>) => {
    for (const event of batch) utf8.encode(PerEvent.encode(event))
  }
  const batched = (batch: ReadonlyArray<RunEvent.RunEvent>) => void ServerSentEvents.encodeAll(batch)
  rate(perEvent)
  rate(batched)
  return { perEvent: rate(perEvent), batched: rate(batched) }
}

export const sse = async (options: {
  readonly runsPerBlock: number
  readonly blocks: number
  readonly concurrency: number
}): Promise<SseResult> => {
  const writes = { count: 0 }
  const server = await serve(writes)
  const encoders = ["perEvent", "batched"] as const
  const totals = {
    perEvent: { runs: 0, events: 0, cpu: 0, writes: 0, chunks: 0 },
    batched: { runs: 0, events: 0, cpu: 0, writes: 0, chunks: 0 }
  }
  try {
    // A warm-up block each, not counted: the first runs compile the paths.
    for (const encoder of encoders) await runChild("sseClientMain", [String(server.port), encoder, "20", "10"])
    for (let block = 0; block < options.blocks; block++) {
      for (let k = 0; k < encoders.length; k++) {
        const encoder = encoders[(block + k) % encoders.length]!
        writes.count = 0
        const cpu0 = process.cpuUsage()
        const [load] = (await runChild("sseClientMain", [
          String(server.port),
          encoder,
          String(options.runsPerBlock),
          String(options.concurrency)
        ])) as [LoadResult]
        const cpu = process.cpuUsage(cpu0)
        const total = totals[encoder]
        total.runs += options.runsPerBlock
        total.events += load.events
        total.cpu += (cpu.user + cpu.system) / 1000
        total.writes += writes.count
        total.chunks += load.chunks
      }
    }
  } finally {
    await server.close()
  }
  const side = (t: (typeof totals)["batched"]): SseSide => ({
    runs: t.runs,
    events: t.events,
    cpuMillis: t.cpu,
    eventsPerCpuSecond: t.events / (t.cpu / 1000),
    socketWrites: t.writes,
    httpChunks: t.chunks
  })
  return {
    deltasPerRun,
    concurrency: options.concurrency,
    perEvent: side(totals.perEvent),
    batched: side(totals.batched),
    encodeOnly: encodeOnly(200_000)
  }
}
