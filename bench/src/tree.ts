/**
 * Scenario 3: cancel a run tree of 10 subtasks, each with a sub-agent streaming from the model (10 open
 * streams) and 10 tool fibers holding staged writes (SQLite): time from cancel to every fiber done, every
 * write rolled back (the run's outcome), and the server seeing every socket closed, whichever comes last.
 * The server runs in a process of its own, so it sees a close when it happens, not when this process's
 * event loop gets to it. Baseline: the same for a run with one stream.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Schema, Scope } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, CancelReason, StagedWrites, Subtask, Tool } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import * as RemoteFake from "./remoteFake.js"
import { sleep, summarize, type Summary } from "./stats.js"

const subAgent = Agent.make({ name: "sub", system: "sub" })

const fanOut = (subtasks: number, toolsPerSubtask: number) =>
  Tool.make("fan_out", {
    description: "Starts the tree",
    input: Schema.Struct({}),
    output: Schema.String,
    handler: () =>
      Effect.gen(function* () {
        for (let s = 0; s < subtasks; s++) {
          const holders = Array.from({ length: toolsPerSubtask }, (_, t) =>
            AgentRun.stage(StagedWrites.upsert("bench", `${s}-${t}`, { s, t })).pipe(Effect.zipRight(Effect.never))
          )
          yield* Subtask.spawn(
            `branch-${s}`,
            Effect.all([Agent.run(subAgent, "go"), ...holders], { concurrency: "unbounded" })
          )
        }
        return yield* Effect.never
      })
  })

export interface TreeResult {
  readonly fibers: number
  readonly streams: number
  readonly tree: Summary
  readonly single: Summary
  readonly writesRolledBack: number
  readonly rowsLeft: number
}

const measure = async (subtasks: number, toolsPerSubtask: number, trials: number) => {
  const fake = await RemoteFake.startSummary(60_000, 50, subtasks === 0 ? undefined : "fan_out")
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-bench-"))
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }),
      SqlStagedWrites.layerSqlite({ filename: path.join(dir, "bench.db") }),
      Logger.minimumLogLevel(LogLevel.Warning)
    )
  )
  const agent = Agent.make({ name: "root", tools: [fanOut(subtasks, toolsPerSubtask)] })
  const times: Array<number> = []
  let writesRolledBack = 0
  try {
    // Requests per trial: the root's (a tool call, then it ends) and one per streaming sub-agent.
    const opened = subtasks === 0 ? 1 : 1 + subtasks
    for (let i = 0; i < trials; i++) {
      const first = i * opened
      const scope = await runtime.runPromise(Scope.make())
      const run = await runtime.runPromise(Scope.extend(AgentRun.start(agent, "go"), scope))
      await fake.waitUntil((summary) => summary.started >= first + opened)
      await sleep(20)
      const t0 = RemoteFake.now()
      const outcome = await runtime.runPromise(run.cancel(new CancelReason.UserAbort()))
      const decided = RemoteFake.now()
      const closed = await fake.waitUntil((summary) => summary.ended >= first + opened && summary.inFlight === 0)
      times.push(Math.max(decided, closed.lastEndedAt) - t0)
      if (outcome._tag === "Cancelled") writesRolledBack = outcome.writesRolledBack
      await runtime.runPromise(Scope.close(scope, Exit.void))
    }
    const rows = await runtime.runPromise(SqlStagedWrites.list("bench"))
    return { times, writesRolledBack, rowsLeft: rows.length }
  } finally {
    await runtime.dispose()
    await fake.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export const treeCancel = async (trials: number): Promise<TreeResult> => {
  const tree = await measure(10, 10, trials)
  const single = await measure(0, 0, trials)
  return {
    fibers: 10 * 10 + 10,
    streams: 10,
    tree: summarize(tree.times),
    single: summarize(single.times),
    writesRolledBack: tree.writesRolledBack,
    rowsLeft: tree.rowsLeft
  }
}
