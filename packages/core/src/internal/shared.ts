/** What the phases of one root run share (`run.ts`), and the run's handle over it. */
import { Deferred, Effect, FiberId, Option } from "effect"
import type { Duration, Fiber } from "effect"
import type { Agent } from "../Agent.js"
import type { AgentError } from "../AgentError.js"
import type { AgentRun, RunInput, RunOptions } from "../AgentRun.js"
import type { Message } from "../Message.js"
import type * as CancelReason from "../CancelReason.js"
import type { RunOutcome } from "../RunOutcome.js"
import type * as TokenBudget from "../TokenBudget.js"
import type * as Events from "./events.js"
import * as Lifecycle from "./lifecycle.js"
import type * as Stopper from "./stopper.js"
import * as Transcript from "./transcript.js"

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
  readonly outcome: Deferred.Deferred<RunOutcome>
  readonly cancelDeadline: Duration.Duration
}

/**
 * The run's handle. A cancel of a run whose outcome is decided changes nothing and returns the outcome. A class,
 * so that every handle shares one shape (an object literal with a getter gets a hidden class of its own per handle).
 */
class RunHandle<R> implements AgentRun {
  readonly id: string
  readonly sessionId: string | undefined
  readonly agent: string
  readonly eventsAfter: AgentRun["eventsAfter"]
  readonly cancel: AgentRun["cancel"]
  readonly requestCancel: AgentRun["requestCancel"]
  readonly unsafeRequestCancel: AgentRun["unsafeRequestCancel"]
  readonly outcome: AgentRun["outcome"]
  readonly tokens: AgentRun["tokens"]
  readonly fiber: AgentRun["fiber"]
  readonly #shared: Shared<R>

  constructor(shared: Shared<R>, fiber: Effect.Effect<Fiber.RuntimeFiber<unknown, AgentError>>) {
    const awaitOutcome = Deferred.await(shared.outcome)
    const cancelNow = (reason: CancelReason.CancelReason, requester: FiberId.FiberId = FiberId.none) =>
      shared.transition(Lifecycle.requestCancel(shared.lifecycle.state, reason), requester)
    const requestCancel = (reason: CancelReason.CancelReason): Effect.Effect<void> =>
      Effect.fiberIdWith((requester) => Effect.sync(() => cancelNow(reason, requester)))
    this.#shared = shared
    this.id = shared.runId
    this.sessionId = shared.options.sessionId
    this.agent = shared.agent.name
    this.eventsAfter = (after) => shared.events.streamAfter(after)
    // The run bounds its own ending (the cancel deadline on the tree, then rollback), so a cancel just waits.
    this.cancel = (reason) => Effect.zipRight(requestCancel(reason), awaitOutcome)
    this.requestCancel = requestCancel
    this.unsafeRequestCancel = (reason) => cancelNow(reason)
    this.outcome = awaitOutcome
    this.tokens = shared.ledger.snapshot
    this.fiber = fiber
  }

  /** Built when read (most runs are never watched; a stream pipeline is dozens of objects per run). */
  get events() {
    return this.#shared.events.stream()
  }

  /** A method (on the prototype): nothing is built per run until a checkpoint asks. */
  transcriptSoFar(why: string): Effect.Effect<ReadonlyArray<Message>> {
    const cell = this.#shared.transcript
    return Effect.sync(() => Transcript.close(cell.current, why))
  }

  /** Built when read, likewise. */
  get poll() {
    return Deferred.poll(this.#shared.outcome).pipe(
      Effect.flatMap(Option.match({ onNone: () => Effect.succeedNone, onSome: Effect.asSome }))
    )
  }
}

/** The run's handle over what its phases share. */
export const handleOf = <R>(
  shared: Shared<R>,
  fiber: Effect.Effect<Fiber.RuntimeFiber<unknown, AgentError>>
): AgentRun => new RunHandle(shared, fiber)
