/**
 * The chaos soak: thousands of runs through the real HTTP routes against a
 * fake Anthropic API that injects faults, with tools that succeed, fail, hang,
 * ignore their signal and run child processes, and writes staged to SQLite.
 * Each run is read to its end, dropped, stopped or starved of budget. After
 * every round the soak checks that nothing of the runs is left (fibers, model
 * responses, processes), that no run that did not complete committed a write,
 * that every completed run's writes are there, and how the heap grew. It exits
 * non-zero on any violation.
 *
 * `pnpm soak [--quick] [--seed=N] [--rounds=N] [--runs=N] [--concurrency=N]`; `pnpm soak --leak ...`: the
 * slow-leak soak (`Leak.ts`); `pnpm soak --load ...`: the load test (`Load.ts`).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { AnthropicModel } from "@tether/anthropic"
import { FakeAnthropic } from "@tether/testing"
import { Effect, Exit, Fiber, Logger, LogLevel, Schedule, Scope, Supervisor } from "effect"
import * as Checks from "./Checks.js"
import * as Driver from "./Driver.js"
import * as Leak from "./Leak.js"
import * as Load from "./Load.js"
import * as Plan from "./Plan.js"
import * as Report from "./Report.js"
import * as Server from "./Server.js"
import * as Tools from "./Tools.js"
import { heapUsed } from "./Heap.js"

const argument = (name: string): string | undefined =>
  process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3)

const isQuick = process.argv.includes("--quick")
const settings = {
  seed: Number(argument("seed") ?? Math.floor(Math.random() * 2 ** 31)),
  rounds: Number(argument("rounds") ?? (isQuick ? 3 : 4)),
  runsPerRound: Number(argument("runs") ?? (isQuick ? 50 : 500)),
  concurrency: Number(argument("concurrency") ?? 32)
}

/** Counts the warnings and errors the runs log (a leak report of the core is a warning). */
const makeLogCounter = () => {
  const seen: Array<string> = []
  const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
      seen.push(`${logLevel.label}: ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    }
  })
  return { seen, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const program = (logs: ReturnType<typeof makeLogCounter>) =>
  Effect.gen(function* () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-soak-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const observed = Tools.makeObservations()
    const kit = Tools.make(observed)
    const supervisor = yield* Supervisor.track
    const server = yield* Effect.supervised(
      Server.start({ agent: kit.agent, filename: path.join(dir, "soak.db") }),
      supervisor
    )
    const aliveFibers = Effect.map(supervisor.value, (fibers) => fibers.filter((f) => f.unsafePoll() === null).length)
    const plans = new Map<string, Plan.Plan>()
    const report = Report.make()
    Report.header(settings, isQuick)
    const baseline = { fibers: yield* aliveFibers, heap: yield* heapUsed }

    for (let round = 1; round <= settings.rounds; round++) {
      const startedAt = performance.now()
      const roundScope = yield* Scope.make()
      const fake = yield* FakeAnthropic.make(Plan.script(plans)).pipe(Scope.extend(roundScope))
      const model = yield* AnthropicModel.make({
        apiKey: "soak-not-a-real-key",
        baseURL: fake.url,
        maxRetries: 3,
        retryBaseDelay: "5 millis",
        maxRetryDelay: "100 millis",
        requestTimeout: "10 seconds"
      })
      yield* server.useModel(model)
      const roundPlans = Array.from({ length: settings.runsPerRound }, (_, i) =>
        Plan.make(settings.seed, (round - 1) * settings.runsPerRound + i, round)
      )
      for (const plan of roundPlans) plans.set(plan.sessionId, plan)
      const peak = { fibers: 0 }
      const sampler = yield* Effect.fork(
        Effect.repeat(
          Effect.map(aliveFibers, (n) => void (peak.fibers = Math.max(peak.fibers, n))),
          Schedule.spaced("50 millis")
        )
      )
      const runs = yield* Effect.supervised(
        Effect.forEach(roundPlans, (plan) => Driver.drive(server, plan), { concurrency: settings.concurrency }),
        supervisor
      )
      yield* Fiber.interrupt(sampler)
      // What SessionStore.layerMemory() keeps of this round's sessions (it cannot drop them), as JSON.
      const sessionBytes = yield* Effect.reduce(roundPlans, 0, (sum, plan) =>
        Effect.map(server.store.get(plan.sessionId), (session) =>
          session._tag === "Some" ? sum + JSON.stringify(session.value).length : sum
        )
      )
      const findings: Array<Checks.Finding> = [
        yield* Checks.settle(
          "runs still registered as running",
          Effect.map(server.registry.running, (r) => r.length),
          "5 seconds"
        ),
        yield* Checks.settle(
          "model responses still in flight at the fake",
          Effect.map(fake.requests, (rs) => rs.filter((r) => !r.isFinished && r.closedAt === undefined).length),
          "5 seconds"
        ),
        yield* Checks.settle(
          "child processes of the shell tool alive",
          Effect.map(kit.shell.running, (p) => p.length),
          "5 seconds"
        ),
        yield* Checks.settle("abandoned Promises not yet settled", kit.ignoreSignal.abandoned, "5 seconds"),
        yield* Checks.settle(
          "fibers alive beyond the idle server's",
          Effect.map(aliveFibers, (n) => Math.max(0, n - baseline.fibers)),
          "5 seconds"
        )
      ]
      const stuck = (yield* fake.requests).filter((r) => !r.isFinished && r.closedAt === undefined)
      const stuckViolations = stuck.map((r) => {
        const session = /soak run ([A-Za-z0-9_-]+):/.exec(r.rawBody)?.[1] ?? "?"
        const run = runs.find((x) => x.sessionId === session)
        return (
          `model request #${r.index} of ${session} (${run?.action} -> ${run?.outcome} ${run?.detail}) still open: ` +
          `status ${r.status}, ${r.tokensWritten} tokens written, ${((performance.now() - r.startedAt) / 1000).toFixed(1)} s old`
        )
      })
      const rows = yield* server.records.list(Tools.table).pipe(Effect.orDie)
      const writes = Checks.writes(rows, runs, observed)
      const requests = (yield* fake.requests).length
      yield* Scope.close(roundScope, Exit.void)
      for (const plan of roundPlans) {
        plans.delete(plan.sessionId)
        observed.staged.delete(plan.sessionId)
      }
      const heap = yield* heapUsed
      report.round({
        round,
        runs,
        findings: [...findings, ...writes.findings],
        violations: [...runs.flatMap((run) => run.violations), ...writes.violations, ...stuckViolations],
        writesCommitted: writes.committed,
        modelRequests: requests,
        heap,
        peakFibers: peak.fibers,
        sessionBytes,
        millis: performance.now() - startedAt
      })
    }
    return report.finish({ baseline, observed, logs: logs.seen })
  })

const logs = makeLogCounter()
const exitCode = process.argv.includes("--leak")
  ? await Leak.main(process.argv.slice(2))
  : process.argv.includes("--load")
    ? await Load.main(process.argv)
    : await Effect.runPromise(program(logs).pipe(Effect.scoped, Effect.provide(logs.layer)))
process.exit(exitCode)
