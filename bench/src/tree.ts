/**
 * Scenario 3: cancel a run tree of 10 subtasks, each with a sub-agent streaming from the model (10 open
 * streams) and 10 tool fibers holding staged writes (SQLite): time from cancel to every fiber done, every
 * write rolled back (the run's outcome), and the server seeing every socket closed, whichever comes last.
 * The server runs in a process of its own, so it sees a close when it happens, not when this process's
 * event loop gets to it. Baseline: the same for a run with one stream. Two more figures say where the time goes:
 * the same tree with no model streams (the sub-agents replaced by fibers that wait forever), and the same shape
 * of fibers in bare Effect, without Tether or a model. Each figure comes after a few warm-up trials: the first
 * cancels of a process pay for compiling the cancel path (the first trial of the tree is reported on its own).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, ExecutionStrategy, Exit, Fiber, Layer, Logger, LogLevel, ManagedRuntime, Schema, Scope } from "effect"
import { AnthropicModel } from "@tether/anthropic"
import { Agent, AgentRun, CancelReason, StagedWrites, Subtask, Tool } from "@tether/core"
import { SqlStagedWrites } from "@tether/sql"
import * as RemoteFake from "./remoteFake.js"
import { sleep, summarize, type Summary } from "./stats.js"

const subAgent = Agent.make({ name: "sub", system: "sub" })

const fanOut = (subtasks: number, toolsPerSubtask: number, streams: boolean) =>
  Tool.make({
    name: "fan_out",
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
            Effect.all([streams ? AgentRun.run(subAgent, "go") : Effect.never, ...holders], {
              concurrency: "unbounded"
            })
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
  /** The same tree with no model streams. */
  readonly treeWithoutStreams: Summary
  /** The same shape of fibers in bare Effect: no Tether, no model, no writes. */
  readonly bareEffect: Summary
  /** The first trial of the tree, before the JIT has compiled the cancel path (not counted in `tree`). */
  readonly treeColdMillis: number
  readonly writesRolledBack: number
  readonly rowsLeft: number
}

/** `warmup` trials first, not counted (the first ones also pay for compiling the cancel path). */
const measure = async (subtasks: number, toolsPerSubtask: number, streams: boolean, trials: number, warmup: number) => {
  const fake = await RemoteFake.startSummary(60_000, 50, subtasks === 0 ? undefined : "fan_out")
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-bench-"))
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      AnthropicModel.layer({ apiKey: "bench", baseURL: fake.url, maxRetries: 0 }),
      SqlStagedWrites.layerSqlite({ filename: path.join(dir, "bench.db") }),
      Logger.minimumLogLevel(LogLevel.Warning)
    )
  )
  const agent = Agent.make({ name: "root", tools: [fanOut(subtasks, toolsPerSubtask, streams)] })
  const times: Array<number> = []
  let writesRolledBack = 0
  try {
    // Requests per trial: the root's (a tool call, then it ends) and one per streaming sub-agent.
    const opened = 1 + (streams ? subtasks : 0)
    for (let i = 0; i < warmup + trials; i++) {
      const first = i * opened
      const scope = await runtime.runPromise(Scope.make())
      const run = await runtime.runPromise(Scope.extend(AgentRun.start(agent, "go"), scope))
      await fake.started(first + opened)
      await sleep(20)
      const t0 = RemoteFake.now()
      const outcome = await runtime.runPromise(run.cancel(new CancelReason.UserAbort()))
      const decided = RemoteFake.now()
      const closed = await fake.quiesced(first + opened)
      times.push(Math.max(decided, closed.lastEndedAt) - t0)
      if (outcome._tag === "Cancelled") writesRolledBack = outcome.writesRolledBack
      await runtime.runPromise(Scope.close(scope, Exit.void))
    }
    const rows = await runtime.runPromise(SqlStagedWrites.list("bench"))
    return { times: times.slice(warmup), cold: times[0]!, writesRolledBack, rowsLeft: rows.length }
  } finally {
    await runtime.dispose()
    await fake.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** 10 fibers in a scope, each waiting on 11 more, interrupted all at once and the scope closed: Effect's own cost. */
const measureBareEffect = (subtasks: number, fibersPerSubtask: number, trials: number, warmup: number) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const times: Array<number> = []
      const branch = Effect.all(
        Array.from({ length: fibersPerSubtask }, () => Effect.never),
        { concurrency: "unbounded" }
      )
      for (let i = 0; i < warmup + trials; i++) {
        const scope = yield* Scope.make(ExecutionStrategy.sequential)
        const fibers = yield* Effect.forEach(Array.from({ length: subtasks }), () => Effect.forkIn(branch, scope))
        yield* Effect.sleep(20)
        const t0 = performance.now()
        yield* Fiber.interruptAll(fibers)
        yield* Scope.close(scope, Exit.void)
        times.push(performance.now() - t0)
      }
      return times.slice(warmup)
    })
  )

export const treeCancel = async (trials: number, warmup: number): Promise<TreeResult> => {
  const tree = await measure(10, 10, true, trials, warmup)
  const single = await measure(0, 0, true, trials, warmup)
  const withoutStreams = await measure(10, 10, false, trials, warmup)
  const bare = await measureBareEffect(10, 11, trials, warmup)
  return {
    fibers: 10 * 10 + 10,
    streams: 10,
    tree: summarize(tree.times),
    single: summarize(single.times),
    treeWithoutStreams: summarize(withoutStreams.times),
    bareEffect: summarize(bare),
    treeColdMillis: tree.cold,
    writesRolledBack: tree.writesRolledBack,
    rowsLeft: tree.rowsLeft
  }
}
