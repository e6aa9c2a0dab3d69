/**
 * How one model request learns that its run stopped: listeners called directly (`LanguageModel.onAbort`), and the
 * request's `AbortSignal`, made only when a provider reads it. An `AbortSignal` on Node is about 1 KiB (its event
 * target), held for a live stream's whole length, and each abort dispatches an `Event` through it.
 */
import type { TurnRequest } from "../LanguageModel.js"

export class RequestStop {
  private isAborted = false
  private reason: unknown = undefined
  /** Made when the signal is first read. */
  private controller: AbortController | undefined = undefined
  private listeners: Array<(reason: unknown) => void> | undefined = undefined

  /** `owner`: the set of its run's requests in flight, which it joins now and leaves at `release`. */
  constructor(private readonly owner: Set<RequestStop> | undefined) {
    owner?.add(this)
  }

  /** The request's signal (aborted with the reason, if the request was). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.isAborted) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  /** Aborts the signal (if made) with `reason`, then calls each listener once. Idempotent. */
  abort(reason: unknown): void {
    if (this.isAborted) return
    this.isAborted = true
    this.reason = reason
    this.controller?.abort(reason)
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener(reason)
  }

  /** Calls `listener` once when the request is aborted (at once if it is); the result stops listening. */
  listen(listener: (reason: unknown) => void): () => void {
    if (this.isAborted) {
      listener(this.reason)
      return ignore
    }
    ;(this.listeners ??= []).push(listener)
    return () => {
      const index = this.listeners?.indexOf(listener) ?? -1
      if (index >= 0) this.listeners!.splice(index, 1)
    }
  }

  /** The request is over: its run's stop no longer aborts it. */
  release(): void {
    this.owner?.delete(this)
  }
}

/** The stop of a request of a sub-agent: aborted by its own stop and by its parent's request's (`outer`). */
class LinkedStop extends RequestStop {
  private readonly unlisten: () => void

  constructor(
    owner: Set<RequestStop>,
    private readonly outer: RequestStop
  ) {
    super(owner)
    this.unlisten = outer.listen((reason) => this.abort(reason))
  }

  override release(): void {
    super.release()
    this.unlisten()
    this.outer.release()
  }
}

/** A stop in `owner` that `outer`'s abort aborts too, and whose `release` releases `outer`. */
export const linked = (owner: Set<RequestStop>, outer: RequestStop): RequestStop => new LinkedStop(owner, outer)

/**
 * A turn's request as a run makes it. `signal` is an own accessor (so a spread of the request copies the signal,
 * made then) that makes the signal when read; the stop is private (a copy of the request is listened to through
 * its `signal`).
 */
class RunTurnRequest implements TurnRequest {
  declare readonly signal: AbortSignal
  readonly #stop: RequestStop

  constructor(
    readonly system: string | undefined,
    readonly messages: TurnRequest["messages"],
    readonly tools: TurnRequest["tools"],
    readonly maxTokens: number,
    stop: RequestStop
  ) {
    this.#stop = stop
    Object.defineProperty(this, "signal", signalProperty)
  }

  static stopOf(request: TurnRequest): RequestStop | undefined {
    return #stop in request ? request.#stop : undefined
  }
}

/** One descriptor (and one getter) for every request: they share their hidden class. */
const signalProperty: PropertyDescriptor = {
  get(this: TurnRequest) {
    return RunTurnRequest.stopOf(this)!.signal
  },
  enumerable: true,
  configurable: true
}

/** A turn's request that `stop` aborts. */
export const request = (
  system: string | undefined,
  messages: TurnRequest["messages"],
  tools: TurnRequest["tools"],
  maxTokens: number,
  stop: RequestStop
): TurnRequest => new RunTurnRequest(system, messages, tools, maxTokens, stop)

const ignore = () => {}

/**
 * Calls `listener` once when `request` is aborted (at once if it is), with the reason; the result stops listening.
 * A run's request is listened to directly, without making its signal; any other through its `signal`.
 */
export const onAbort = (request: TurnRequest, listener: (reason: unknown) => void): (() => void) => {
  const stop = RunTurnRequest.stopOf(request)
  if (stop !== undefined) return stop.listen(listener)
  const { signal } = request
  if (signal === undefined) return ignore
  if (signal.aborted) {
    listener(signal.reason)
    return ignore
  }
  const onEvent = () => listener(signal.reason)
  signal.addEventListener("abort", onEvent, { once: true })
  return () => signal.removeEventListener("abort", onEvent)
}
