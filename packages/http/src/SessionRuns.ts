/**
 * The runs of sessions, as the session routes use them: start a run of a session (admitted or refused at once),
 * cancel a session's run with a reason, read a session's status, and attach to a run's events after a sequence
 * number. Every operation names the session and the caller; a session belongs to the caller that first started it,
 * and only that caller may use it.
 *
 * The interface is about sessions and runs, not about where they run: `SessionRuns.layer` runs them in this process
 * (over `RunRegistry` and `SessionStore`); another implementation may run them elsewhere (a cluster), and the routes
 * do not change.
 *
 * What every implementation guarantees:
 *
 * - **Admission.** A start over the capacity of the runs (`maxLiveRuns` of the local layer) fails at once with
 *   `RouteError.Overloaded` (503 with `Retry-After`), or waits in a bounded queue for at most a deadline, then fails
 *   the same way: never a hang.
 * - **Independence.** Starts of one session are serialised; starts of different sessions never wait on each other.
 *   `cancel`, `status` and `attach` never wait behind starts.
 * - **Limits without reads.** The runs a caller (or a client address) has going are counted as runs start and end,
 *   never by reading sessions: of two concurrent starts past a limit, exactly one is admitted.
 * - **Refusals change nothing.** A refused start claims no session and starts no run.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { Agent, CancelReason, RunRegistry, SessionStore } from "@tether/core"
 * import { Auth, SessionRuns } from "@tether/http"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const agent = Agent.make({ name: "assistant" })
 * const program = Effect.gen(function* () {
 *   const runs = yield* SessionRuns.SessionRuns
 *   const caller = Auth.CallerId.make("alice")
 *   const started = yield* runs.start({ sessionId: "s-1", caller, agent, message: "Hello" })
 *   const stopped = yield* runs.cancel({ sessionId: "s-1", caller, reason: new CancelReason.UserAbort() })
 *   const last = yield* Stream.runLast(started.events)
 *   return [stopped.outcome._tag, last] // ["Cancelled", Some(RunCancelled)]
 * })
 *
 * const services = SessionRuns.layer({ maxLiveRuns: 100 }).pipe(
 *   Layer.provideMerge(Layer.mergeAll(RunRegistry.layer(), SessionStore.layerMemory())),
 *   Layer.provideMerge(ScriptedModel.layer([ScriptedModel.text("Hi!", { chunks: 3, delay: "1 second" })]))
 * )
 * await Effect.runPromise(program.pipe(Effect.provide(services)))
 * ```
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { Duration, Effect, Option, Stream } from "effect"
import type { Agent, CancelReason, LanguageModel, RunEvent, RunOutcome, SessionStore, TokenBudget } from "@tether/core"
import type * as Auth from "./Auth.js"
import type * as RouteError from "./RouteError.js"

/**
 * A session and the caller asking about it.
 *
 * @since 0.1.0
 */
export interface Who {
  readonly sessionId: string
  readonly caller: Auth.CallerId
}

/**
 * What a start asks for.
 *
 * @since 0.1.0
 */
export interface StartRequest<R> extends Who {
  readonly agent: Agent.Agent<R>
  /** The user's message; the session's conversation so far is its history. */
  readonly message: string
  /** The session's disconnect policy from now on. Default: the session's, or `cancel` for a new session. */
  readonly disconnect?: SessionStore.DisconnectPolicy | undefined
  /** The client's address, counted against `maxRunningPerAddress`; not counted when absent. */
  readonly clientAddress?: string | undefined
  /** A start for a session whose run is going: `refuse` it (`SessionBusy`, the default) or `supersede` that run. */
  readonly onConflict?: "refuse" | "supersede" | undefined
  /** Cancels the run with `Timeout` when it runs longer. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Token ceiling of the run tree; default the agent's. */
  readonly tokenBudget?: number | undefined
  /** Most runs the caller may have going at once, across its sessions (`TooManyRuns` past it). Default: no limit. */
  readonly maxRunningPerCaller?: number | undefined
  /** Most runs `clientAddress` may have going at once (`TooManyRuns` past it). Default: no limit. */
  readonly maxRunningPerAddress?: number | undefined
}

/**
 * A run that was admitted and started.
 *
 * @since 0.1.0
 */
export interface Started {
  readonly sessionId: string
  readonly runId: string
  /** The session's disconnect policy, as the start left it. */
  readonly disconnect: SessionStore.DisconnectPolicy
  /** The run's events from its first, ending with its terminal event. */
  readonly events: Stream.Stream<RunEvent.RunEvent>
  /** Cancels this run (not a later run of the session) with `reason`; its outcome. */
  readonly cancel: (reason: CancelReason.CancelReason) => Effect.Effect<RunOutcome.RunOutcome>
}

/**
 * What a cancel found and did.
 *
 * @since 0.1.0
 */
export interface Cancelled {
  readonly sessionId: string
  readonly runId: string
  /** Whether the run was still going when the cancel arrived (otherwise the outcome is the one it had). */
  readonly wasRunning: boolean
  readonly outcome: RunOutcome.RunOutcome
}

/**
 * A session's status: no run known (`Idle`), its latest run going (`Running`) or ended (`Ended`).
 *
 * @since 0.1.0
 */
export type Status =
  | (StatusCommon & { readonly _tag: "Idle" })
  | (StatusCommon & { readonly _tag: "Running"; readonly runId: string; readonly tokens: TokenBudget.Snapshot })
  | (StatusCommon & { readonly _tag: "Ended"; readonly runId: string; readonly outcome: RunOutcome.RunOutcome })

/** @since 0.1.0 */
export interface StatusCommon {
  readonly sessionId: string
  readonly disconnect: SessionStore.DisconnectPolicy
  /** Messages of the conversation so far (of the ended run's transcript, when the latest run has ended). */
  readonly messages: number
}

/**
 * A run's events, from where the client asked.
 *
 * @since 0.1.0
 */
export interface Attached {
  readonly sessionId: string
  readonly runId: string
  /** The events after the sequence number asked for (all of them when none was), ending with the terminal event. */
  readonly events: Stream.Stream<RunEvent.RunEvent>
}

/**
 * Why a request about an existing session was refused.
 *
 * @since 0.1.0
 */
export type AccessError = RouteError.SessionNotFound | RouteError.Forbidden | SessionStore.SessionStoreError

/**
 * Why a start was refused.
 *
 * @since 0.1.0
 */
export type StartError =
  | RouteError.Forbidden
  | RouteError.SessionBusy
  | RouteError.TooManyRuns
  | RouteError.Overloaded
  | SessionStore.SessionStoreError

/** @since 0.1.0 */
export interface Service {
  /**
   * Starts a run of `agent` on the session's conversation (a new session belongs to `caller`). Admitted at once, or
   * after a bounded wait, or refused (`Overloaded`, `TooManyRuns`, `SessionBusy`, `Forbidden`). The run goes on after
   * the effect returns: it ends by itself, by `cancel`, or by `Started.cancel`.
   */
  readonly start: <R>(
    request: StartRequest<R>
  ) => Effect.Effect<Started, StartError, LanguageModel.LanguageModel | Exclude<R, Auth.CurrentCaller>>
  /**
   * Cancels the session's latest run with `reason` and waits for its outcome (what was rolled back); an ended run
   * answers the outcome it had. Never waits behind starts.
   */
  readonly cancel: (
    request: Who & { readonly reason: CancelReason.CancelReason }
  ) => Effect.Effect<Cancelled, AccessError>
  /** The session's status. Never waits behind starts. */
  readonly status: (who: Who) => Effect.Effect<Status, AccessError>
  /** The latest run's events after `after` (from the first when `None`). Never waits behind starts. */
  readonly attach: (request: Who & { readonly after: Option.Option<number> }) => Effect.Effect<Attached, AccessError>
}

/**
 * The session runs the routes use.
 *
 * @since 0.1.0
 */
export class SessionRuns extends Context.Tag("@tether/http/SessionRuns")<SessionRuns, Service>() {}
