/**
 * Tether: an agent run per request, held by the `RunRegistry` as a server holds its sessions, cancelled with
 * `run.requestCancel` (the Effect way) or, from Promise code, by aborting the `AbortSignal` given to
 * `AgentRun.runPromise`. Default settings unless a variant says otherwise.
 */
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, CancelReason, RunRegistry, Tool } from "@tether/core"
import { nodeHttpFetch } from "../nodeHttpFetch.js"
import { echoTool, prompt } from "./common.js"
import type { Client, Side, Transport } from "./Side.js"

const echo = Tool.make({
  name: echoTool.name,
  description: echoTool.description,
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.succeed(text)
})

export const chat = Agent.make({ name: "chat" })
const echoer = Agent.make({ name: "echoer", tools: [echo] })

/** The model layer every Tether side uses: no SDK retries (as the peers are set), the chosen transport. */
export const modelLayer = (url: string, transport: Transport = "fetch") =>
  AnthropicModel.layer({
    apiKey: "bench",
    baseURL: url,
    maxRetries: 0,
    ...(transport === "node:http" ? { fetch: nodeHttpFetch } : {})
  })

export interface Variant {
  /** Spans on (the default) or off (`Layer.setTracerEnabled(false)`). */
  readonly tracing?: boolean | undefined
  readonly transport?: Transport | undefined
  /** How a stream is cancelled: `run.requestCancel` (default) or the `AbortSignal` of `AgentRun.runPromise`. */
  readonly cancel?: "effect" | "signal" | undefined
}

const keyOf = ({ tracing = true, transport = "fetch", cancel = "effect" }: Variant) =>
  !tracing
    ? "tetherUntraced"
    : transport === "node:http"
      ? "tetherNodeHttp"
      : cancel === "signal"
        ? "tetherSignal"
        : "tether"

const labels: Record<string, string> = {
  tether: "Tether",
  tetherUntraced: "Tether, tracing off",
  tetherNodeHttp: "Tether on node:http",
  tetherSignal: "Tether, by AbortSignal"
}

export const side = (variant: Variant = {}): Side => {
  const key = keyOf(variant)
  return {
    key,
    label: labels[key]!,
    connect: async (url): Promise<Client> => {
      const runtime = ManagedRuntime.make(
        Layer.mergeAll(
          modelLayer(url, variant.transport),
          RunRegistry.layer(),
          Logger.minimumLogLevel(LogLevel.Warning),
          Layer.setTracerEnabled(variant.tracing ?? true)
        )
      )
      const rt = await runtime.runtime()
      const registry = runtime.runSync(RunRegistry.RunRegistry)
      let sessions = 0
      const stream =
        variant.cancel === "signal"
          ? () => {
              const controller = new AbortController()
              const done = AgentRun.runPromise(chat, prompt, { runtime: rt, signal: controller.signal })
              return { abort: () => controller.abort(), settled: () => done }
            }
          : () => {
              const run = runtime.runSync(registry.start(`s${++sessions}`, chat, prompt))
              return {
                abort: () => void runtime.runFork(run.requestCancel(new CancelReason.UserAbort())),
                settled: () => runtime.runPromise(run.outcome)
              }
            }
      return {
        stream,
        cancelAll:
          variant.cancel === "signal"
            ? undefined
            : () => runtime.runPromise(registry.cancelAll(new CancelReason.Shutdown())),
        toolRun: () => runtime.runPromise(AgentRun.run(echoer, prompt)),
        close: () => runtime.dispose()
      }
    }
  }
}
