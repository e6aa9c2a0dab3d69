/**
 * A sub-agent: an agent run inside a run (from a tool or a subtask). It shares the root run's session, staged writes,
 * events and cancellation; its own options (`runId`, `timeout`, `tokenBudget`) apply to it alone: past its timeout
 * or its own budget it is stopped (signal first: its model requests abort at once) and fails with
 * `SubAgentCancelledError`, while the parent goes on.
 */
import { Deferred, Duration, Effect, Exit } from "effect"
import type { Agent } from "../Agent.js"
import { SubAgentCancelledError, type AgentError } from "../AgentError.js"
import type { RunInput, RunOptions, RunResult } from "../AgentRun.js"
import * as CancelReason from "../CancelReason.js"
import type { LanguageModel } from "../LanguageModel.js"
import { provide, type RunContext } from "./context.js"
import { linked, type RequestStop } from "./requestStop.js"
import { runLoop } from "./loop.js"
import { inputMessages } from "./run.js"
import * as SubLedger from "./subLedger.js"
import * as Transcript from "./transcript.js"

const timeoutOf = (timeout: Duration.DurationInput) =>
  new CancelReason.Timeout({ millis: Duration.toMillis(Duration.decode(timeout)) })

export const runNested = <R>(
  parent: RunContext,
  agent: Agent<R>,
  input: RunInput,
  options: RunOptions
): Effect.Effect<RunResult, AgentError, LanguageModel | R> =>
  Effect.gen(function* () {
    const agentPath = `${parent.agentPath}/${agent.name}`
    const runId = options.runId ?? parent.runId
    const stopped = yield* Deferred.make<never, SubAgentCancelledError>()
    const requests = new Set<RequestStop>()
    const stop = (reason: CancelReason.CancelReason) => {
      for (const request of requests) request.abort(reason)
      requests.clear()
      Deferred.unsafeDone(
        stopped,
        Exit.fail(
          new SubAgentCancelledError({
            agent: agentPath,
            reason,
            message: `sub-agent ${agentPath} was stopped: ${CancelReason.describe(reason)}`
          })
        )
      )
    }
    const ledger =
      options.tokenBudget === undefined
        ? undefined
        : yield* SubLedger.make(parent.ledger, options.tokenBudget, (snapshot, refusal) =>
            stop(
              refusal === undefined
                ? new CancelReason.BudgetExceeded({
                    ceiling: snapshot.ceiling,
                    used: snapshot.used,
                    estimated: snapshot.tally.estimated
                  })
                : new CancelReason.BudgetExceeded({
                    ceiling: refusal.ceiling,
                    used: refusal.used,
                    reservedInFlight: refusal.reservedInFlight,
                    needed: refusal.needed
                  })
            )
          )
    // A budget trip of the sub-agent's own ledger stops the sub-agent; anything else is the root run's to handle.
    const isOwn = (reason: CancelReason.CancelReason) =>
      reason._tag === "BudgetExceeded" && ledger?.isExhausted() === true
    const publish = parent.publishAs(agentPath, runId)
    const ctx: RunContext = {
      ...parent,
      runId,
      agentPath,
      publish,
      emit: (make) => Effect.sync(() => publish(make)),
      ledger: ledger ?? parent.ledger,
      requestStop: () => linked(requests, parent.requestStop()),
      cancelNow: (reason) => (isOwn(reason) ? stop(reason) : parent.cancelNow(reason)),
      requestCancel: (reason) => (isOwn(reason) ? Effect.sync(() => stop(reason)) : parent.requestCancel(reason))
    }
    const loop = provide(runLoop(agent, ctx, Transcript.initial(inputMessages(input))), ctx)
    // Fails with the sub-agent's stop: when `stop` is called, or when the timeout calls it.
    const whenStopped =
      options.timeout === undefined
        ? Deferred.await(stopped)
        : Effect.race(
            Deferred.await(stopped),
            Effect.sleep(options.timeout).pipe(
              Effect.zipRight(Effect.sync(() => stop(timeoutOf(options.timeout!)))),
              Effect.zipRight(Deferred.await(stopped))
            )
          )
    return yield* Effect.raceFirst(loop, whenStopped)
  })
