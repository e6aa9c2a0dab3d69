/** What the phases of one root run share (`run.ts`), and the run's handle over it. */
import { Effect, FiberId } from "effect"
import type { Duration, Fiber } from "effect"
import type { Agent } from "../Agent.js"
import type { AgentError } from "../AgentError.js"
import type { AgentRun, RunInput, RunOptions } from "../AgentRun.js"
import type * as CancelReason from "../CancelReason.js"
import type { RunOutcome } from "../RunOutcome.js"
import type * as TokenBudget from "../TokenBudget.js"
import type * as Events from "./events.js"
import * as Lifecycle from "./lifecycle.js"
import type * as Stopper from "./stopper.js"
import * as Transcript from "./transcript.js"
import type { Once } from "./once.js"

/** What the phases of one run share. */
export interface Shared<R> {
  readonly agent: Agent<R>
  readonly input: RunInput
  readonly options: RunOptions
  readonly runId: string
  readonly events: Events.Events
  /** The run's state; changed only by `transition`. */
  readonly lifecycle: { state: Lifecycle.State }
  readonly transition: (step: Lifecycle.Step, requester?: FiberId.FiberId) => void
  readonly stopper: Stopper.Stopper
  readonly ledger: TokenBudget.Ledger
  readonly transcript: Transcript.Cell
  readonly outcome: Once<RunOutcome>
  readonly cancelDeadline: Duration.Duration
}

/**
 * The run's handle. A cancel of a run whose outcome is decided changes nothing and returns the outcome. A class,
 * so that every handle shares one shape (an object literal with a getter gets a hidden class of its own per handle);
 * its functions and effects are built when read (as a function read off the handle, they work detached), not kept
 * per run.
 */
class RunHandle<R> implements AgentRun {
  readonly id: string
  readonly sessionId: string | undefined
  readonly agent: string
  readonly #shared: Shared<R>
  readonly #fiber: Once<Fiber.RuntimeFiber<unknown, AgentError>>

  constructor(shared: Shared<R>, fiber: Once<Fiber.RuntimeFiber<unknown, AgentError>>) {
    this.#shared = shared
    this.#fiber = fiber
    this.id = shared.runId
    this.sessionId = shared.options.sessionId
    this.agent = shared.agent.name
  }

  /** Built when read (most runs are never watched; a stream pipeline is dozens of objects per run). */
  get events() {
    return this.#shared.events.stream()
  }

  /** Built when read, likewise: nothing per run until a checkpoint asks. */
  get transcriptSoFar(): AgentRun["transcriptSoFar"] {
    const cell = this.#shared.transcript
    return (why) => Effect.sync(() => Transcript.close(cell.current, why))
  }

  get eventsAfter(): AgentRun["eventsAfter"] {
    const events = this.#shared.events
    return (after) => events.streamAfter(after)
  }

  // The run bounds its own ending (the cancel deadline on the tree, then rollback), so a cancel just waits.
  get cancel(): AgentRun["cancel"] {
    const shared = this.#shared
    return (reason) => Effect.zipRight(requestCancelOf(shared, reason), shared.outcome.await)
  }

  get requestCancel(): AgentRun["requestCancel"] {
    const shared = this.#shared
    return (reason) => requestCancelOf(shared, reason)
  }

  get unsafeRequestCancel(): AgentRun["unsafeRequestCancel"] {
    const shared = this.#shared
    return (reason) => cancelNow(shared, reason, FiberId.none)
  }

  get outcome() {
    return this.#shared.outcome.await
  }

  get tokens() {
    return this.#shared.ledger.snapshot
  }

  get fiber() {
    return this.#fiber.await
  }

  /** Built when read, likewise. */
  get poll() {
    const outcome = this.#shared.outcome
    return Effect.sync(() => outcome.unsafePoll())
  }

  /** What a run made here shares (the registry's `cancelAll` tells them all, then waits on them all at once). */
  static sharedOf(run: AgentRun): Shared<unknown> | undefined {
    return run instanceof RunHandle ? run.#shared : undefined
  }
}

/**
 * Cancels `run` with `reason` on behalf of `requester`, synchronously, and returns its outcome cell (`undefined` for
 * an `AgentRun` that is not one of core's handles: it is only told, with `unsafeRequestCancel`).
 */
export const unsafeCancelBy = (
  run: AgentRun,
  reason: CancelReason.CancelReason,
  requester: FiberId.FiberId
): Once<RunOutcome> | undefined => {
  const shared = RunHandle.sharedOf(run)
  if (shared === undefined) {
    run.unsafeRequestCancel(reason)
    return undefined
  }
  cancelNow(shared, reason, requester)
  return shared.outcome
}

const cancelNow = <R>(shared: Shared<R>, reason: CancelReason.CancelReason, requester: FiberId.FiberId) =>
  shared.transition(Lifecycle.requestCancel(shared.lifecycle.state, reason), requester)

const requestCancelOf = <R>(shared: Shared<R>, reason: CancelReason.CancelReason): Effect.Effect<void> =>
  Effect.fiberIdWith((requester) => Effect.sync(() => cancelNow(shared, reason, requester)))

/** The run's handle over what its phases share. */
export const handleOf = <R>(shared: Shared<R>, fiber: Once<Fiber.RuntimeFiber<unknown, AgentError>>): AgentRun =>
  new RunHandle(shared, fiber)
