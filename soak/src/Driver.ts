/**
 * One run of the soak, as a client drives it over real HTTP: start it, then
 * read it to its end, drop the connection, or press Stop from a second
 * request. Its outcome is then read from the server's `RunRegistry`, checked
 * against what the client did, and the session's run is forgotten.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Driver from "./Driver.js"
 * import type * as Plan from "./Plan.js"
 * import type * as Server from "./Server.js"
 *
 * declare const server: Server.Server
 * declare const plan: Plan.Plan
 * const record = Driver.drive(server, plan) // Effect<RunRecord>
 * ```
 *
 * @since 0.1.0
 */
import type { RunOutcome } from "@tether/core"
import { SessionClient as Client } from "@tether/testing"
import { Cause, Effect, Option } from "effect"
import * as Plan from "./Plan.js"
import type * as Server from "./Server.js"
import { tokenOf } from "./Server.js"

/** How one run ended, as the soak saw it. @since 0.1.0 */
export interface RunRecord {
  readonly sessionId: string
  readonly action: Plan.Action
  /** `Completed`, `Cancelled`, `Failed`, or `Refused` (no run started) / `Lost` (no outcome in time). */
  readonly outcome: string
  /** The cancel reason's or the error's `_tag`. */
  readonly detail: string
  readonly writesCommitted: number
  readonly violations: ReadonlyArray<string>
}

const terminalTags: Record<string, string> = {
  RunCompleted: "Completed",
  RunCancelled: "Cancelled",
  RunFailed: "Failed"
}

/** The `_tag` of a failed run's typed error, or `Defect` / `Interrupt`. */
const errorTag = (cause: Cause.Cause<{ readonly _tag: string }>): string =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => error._tag,
    onNone: () => (Cause.isDie(cause) ? "Defect" : "Interrupt")
  })

const detailOf = (outcome: RunOutcome.RunOutcome): string => {
  switch (outcome._tag) {
    case "Completed":
      return "-"
    case "Cancelled":
      return outcome.reason._tag
    case "Failed":
      return errorTag(outcome.cause)
  }
}

/** The cancel reason a run of `action` may end with. */
const expectedReason: Record<Plan.Action, string> = {
  complete: "-",
  drop: "ClientDisconnected",
  stop: "UserAbort",
  budget: "BudgetExceeded"
}

/** Drives the run of `plan` and checks what the client and the registry saw. @since 0.1.0 */
export const drive = (server: Server.Server, plan: Plan.Plan): Effect.Effect<RunRecord> =>
  Effect.gen(function* () {
    const violations: Array<string> = []
    const violation = (what: string) => violations.push(`${plan.sessionId} (${plan.action}): ${what}`)
    /** The result of a run whose outcome never came. */
    const lost = () => ({
      sessionId: plan.sessionId,
      action: plan.action,
      outcome: "Lost",
      detail: "-",
      writesCommitted: 0,
      violations
    })
    const headers = Client.bearer(tokenOf(plan.caller))
    const mount = plan.action === "budget" ? "tight" : "api"
    const stream = yield* Client.openEventStream({
      port: server.port,
      method: "POST",
      path: `/${mount}/sessions/${plan.sessionId}/messages`,
      headers,
      body: JSON.stringify({ message: Plan.userMessage(plan) })
    }).pipe(Effect.timeout("10 seconds"), Effect.option)
    if (Option.isNone(stream) || stream.value.status !== 200) {
      const status = Option.match(stream, { onNone: () => "no response headers in 10 s", onSome: (s) => s.status })
      violation(`the start was not streamed: ${status}`)
      return {
        sessionId: plan.sessionId,
        action: plan.action,
        outcome: "Refused",
        detail: String(status),
        writesCommitted: 0,
        violations
      }
    }
    const events = stream.value
    let terminal: string | undefined
    let isWatchedToEnd = true
    if (plan.action === "drop") {
      yield* Effect.sleep(plan.actAfterMillis)
      yield* events.destroy
      isWatchedToEnd = false
    } else if (plan.action === "stop") {
      yield* Effect.sleep(plan.actAfterMillis)
      const answer = yield* Client.requestJson({
        port: server.port,
        method: "POST",
        path: `/api/sessions/${plan.sessionId}/cancel`,
        headers
      }).pipe(Effect.timeout("10 seconds"), Effect.option)
      if (Option.isNone(answer) || answer.value.status !== 200) {
        violation(
          `Stop was not answered with 200: ${Option.match(answer, { onNone: () => "timeout", onSome: (a) => a.status })}`
        )
      }
    }
    if (isWatchedToEnd) {
      const all = yield* events.ended.pipe(Effect.timeout("20 seconds"), Effect.option)
      if (Option.isNone(all)) {
        violation("the event stream did not end within 20 s")
        yield* events.destroy
      } else {
        terminal = all.value.map((event) => terminalTags[event.event]).find((tag) => tag !== undefined)
        if (terminal === undefined) violation("the event stream ended without a terminal event")
      }
    }
    const run = yield* server.registry.get(plan.sessionId)
    if (Option.isNone(run)) {
      violation("the registry does not know the run")
      return lost()
    }
    const outcome = yield* run.value.outcome.pipe(Effect.timeout("15 seconds"), Effect.option)
    yield* server.registry.forget(plan.sessionId)
    if (Option.isNone(outcome)) {
      violation("no outcome within 15 s of the client's action")
      return lost()
    }
    const ended = outcome.value
    const detail = detailOf(ended)
    if (terminal !== undefined && terminal !== ended._tag) {
      violation(`the terminal event says ${terminal} but the outcome is ${ended._tag}`)
    }
    if (ended._tag === "Cancelled" && detail !== expectedReason[plan.action]) {
      violation(`cancelled with ${detail}, expected ${expectedReason[plan.action]}`)
    }
    if (ended._tag === "Failed" && (detail === "Defect" || detail === "Interrupt")) {
      violation(`failed with a ${detail}: ${Cause.pretty(ended.cause).slice(0, 300)}`)
    }
    if (plan.action === "budget" && !(ended._tag === "Cancelled" && detail === "BudgetExceeded")) {
      violation(`a run over its budget ended ${ended._tag} (${detail})`)
    }
    return {
      sessionId: plan.sessionId,
      action: plan.action,
      outcome: ended._tag,
      detail,
      writesCommitted: ended._tag === "Completed" ? ended.writesCommitted : 0,
      violations
    }
  })
