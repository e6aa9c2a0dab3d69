import type Anthropic from "@anthropic-ai/sdk"
import { APIError } from "@anthropic-ai/sdk"
import { LanguageModel, ModelError } from "@tether/core"
import { Clock, Context, Duration, Effect, Either, Schedule } from "effect"
import type { RateLimiter } from "effect"
import { fromCause } from "./errors.js"
import { decode, initialState, outOfOrder, toModelEvents, type TurnState } from "./events.js"
import type { IdleSweep, Watched } from "./idle.js"
import { decoder, type SseLimits, type SseMessage } from "./sse.js"

/** How one attempt failed, and whether it had already emitted events (then it must not be replayed). */
export interface AttemptFailure {
  readonly error: ModelError.ModelError
  readonly isAfterFirstEvent: boolean
}

export interface TurnSettings {
  readonly client: Anthropic
  readonly model: string
  readonly rateLimiter: RateLimiter.RateLimiter | undefined
  /** `retryPolicy` of the model's options, built once. */
  readonly retry: Schedule.Schedule<unknown, AttemptFailure>
  readonly limits: SseLimits
  /** The model's idle sweep; `undefined`: a response may stay quiet forever. */
  readonly idle: IdleSweep | undefined
}

/** An `error` event inside the stream, as the SDK makes it (no status: the body's `error.type` says what it was). */
const errorEvent = (data: string, headers: Headers): APIError => {
  let body: unknown
  try {
    body = JSON.parse(data)
  } catch {
    body = data
  }
  const type = (body as { error?: { type?: unknown } } | undefined)?.error?.type
  return new APIError(
    undefined,
    body as object,
    undefined,
    headers,
    typeof type === "string" ? (type as APIError["type"]) : undefined
  )
}

const capError = (limits: SseLimits, passed: "line" | "event") =>
  new ModelError.MalformedResponseError({
    message: `an SSE ${passed} of the response passed the ${passed === "line" ? limits.lineBytes : limits.eventBytes}-byte cap`
  })

/** False where the intrinsics are frozen (`node --frozen-intrinsics`): then the errors keep their stacks. */
const canSetStackTraceLimit = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")?.writable === true

/**
 * The signal one request is sent with, as the SDK reads it (`aborted`, `addEventListener` / `removeEventListener` of
 * its one `abort` listener, which aborts the SDK's own controller of the request: the one its `fetch` gets): no
 * AbortController of Tether's per request, and the run's cancel reaches the socket through one listener less.
 *
 * `abort` calls that listener with stack traces off. The listeners that run in this call are the SDK's and
 * fetch's own (a request's controller is private to it): each makes an abort error (the SDK's controller aborts
 * without a reason, so a DOMException; fetch an error of its own), and Node's socket teardown reads each error's
 * stack, which it then formats, before it closes the socket. Nobody reads these errors: the run ends with its
 * `CancelReason`. Without stacks they cost a fraction (measured: ~0.6 ms less from cancel to outcome for a tree
 * with ten open streams, ~0.2-0.35 s less to quiesce 5000 streams), on the path from the cancel to the socket's
 * close. Only this call is affected: the limit is restored before it returns.
 */
class RequestSignal {
  aborted = false
  private listener: (() => void) | undefined = undefined

  addEventListener(_type: "abort", listener: () => void): void {
    this.listener = listener
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    if (this.listener === listener) this.listener = undefined
  }

  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const listener = this.listener
    this.listener = undefined
    if (listener === undefined) return
    if (!canSetStackTraceLimit) return listener()
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      listener()
    } finally {
      Error.stackTraceLimit = limit
    }
  }
}

/**
 * One attempt: one request and the reading of its response, in one object (a live stream holds it and no closures
 * of its own). It is the idle sweep's `Watched` entry, holds the listener of the run's abort of the request
 * (`LanguageModel.onAbort`), and is the reader of the body (`pump`). It never emits once it is done or its request
 * is aborted: by then the turn's consumer is gone.
 *
 * Its `RequestSignal` is the request's: aborted by the run's abort (called synchronously in the call that
 * cancels the run, so the socket closes before any fiber has even begun to unwind), by the
 * interrupt of the turn, and when the attempt ends before its response was read to the end (aborting a response
 * read to its end would cost the keep-alive connection).
 */
class Attempt implements Watched {
  /** When (on `clock`) the headers or the latest protocol event arrived; `undefined` before the headers. */
  lastEventAt: number | undefined = undefined
  /** The attempt has emitted events: it must not be replayed. */
  isAfterFirstEvent = false
  /** The response was read to its end. */
  private isRead = false
  private isDone = false
  private readonly signal = new RequestSignal()
  /** Stops listening to the run's abort of the request (`LanguageModel.onAbort`: no `AbortSignal` made). */
  private unlisten: (() => void) | undefined = undefined
  /** The request's parameters until they are sent: not held for the length of the stream. */
  private params: Anthropic.MessageCreateParamsStreaming | undefined
  private headers: Headers | undefined
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined
  private readonly state: TurnState = initialState()

  constructor(
    private readonly settings: TurnSettings,
    params: Anthropic.MessageCreateParamsStreaming,
    private readonly request: LanguageModel.TurnRequest,
    private readonly onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void,
    private readonly resume: (effect: Effect.Effect<void, AttemptFailure>) => void,
    private readonly clock: Clock.Clock
  ) {
    this.params = params
  }

  start(): void {
    this.unlisten = LanguageModel.onAbort(this.request, () => this.signal.abort())
    this.settings.idle?.watch(this.clock, this)
    void this.pump()
  }

  /** The idle sweep found the response quiet. */
  onIdle(error: ModelError.ModelError): void {
    this.done(Effect.fail({ error, isAfterFirstEvent: this.isAfterFirstEvent }))
  }

  /** Stops watching and listening; aborts the request unless its response was read to its end. Idempotent. */
  finish(): void {
    if (this.isDone) return
    this.isDone = true
    this.settings.idle?.unwatch(this)
    this.unlisten?.()
    if (!this.isRead) this.signal.abort()
  }

  private done(effect: Effect.Effect<void, AttemptFailure>): void {
    if (this.isDone) return
    this.finish()
    this.resume(effect)
  }

  private fail(error: ModelError.ModelError): void {
    if (!this.signal.aborted) {
      this.done(Effect.fail({ error, isAfterFirstEvent: this.isAfterFirstEvent }))
    }
  }

  /** Sends the request (and forgets its parameters). */
  private send(): Promise<Response> {
    const params = this.params!
    this.params = undefined
    // (Not an AbortSignal, but all of one the SDK uses: see `RequestSignal`.)
    return this.settings.client.messages.create(params, { signal: this.signal as unknown as AbortSignal }).asResponse()
  }

  /**
   * Reads the response into `onEvents`. The body is read as it arrives and decoded here (`sse.ts`, with the size
   * caps): the SDK only sends the request and checks its status. It never rejects.
   */
  private async pump(): Promise<void> {
    const { signal } = this
    try {
      let response: Response
      try {
        response = await this.send()
      } catch (cause) {
        return this.fail(fromCause(cause))
      }
      this.lastEventAt = this.clock.unsafeCurrentTimeMillis()
      if (response.body === null) {
        return this.fail(new ModelError.MalformedResponseError({ message: "the response has no body" }))
      }
      this.headers = response.headers
      const reader = (this.reader = response.body.getReader())
      const sse = decoder(this.settings.limits)
      while (true) {
        let chunk: ReadableStreamReadResult<Uint8Array>
        try {
          chunk = await reader.read()
        } catch (cause) {
          // A read that fails because the request was aborted is not the end of the turn.
          return signal.aborted ? undefined : this.fail(fromCause(cause))
        }
        if (signal.aborted) return this.stop()
        if (chunk.done) break
        const messages = sse.push(chunk.value)
        if (typeof messages === "string") {
          this.fail(capError(this.settings.limits, messages))
          return this.stop()
        }
        if (!this.take(messages)) return this.stop()
      }
      if (!this.take(sse.end())) return
      if (!this.state.isStopped) {
        return this.fail(new ModelError.MalformedResponseError({ message: "the stream ended before message_stop" }))
      }
      this.isRead = true
      this.done(Effect.void)
    } catch (defect) {
      if (!signal.aborted) this.done(Effect.die(defect))
    }
  }

  /** Stops reading: nothing more of the body is read or buffered (the release then closes the connection). */
  private stop(): void {
    this.reader?.cancel().catch(ignore)
  }

  /** Maps the messages to events and emits them; false once the attempt has failed. */
  private take(messages: ReadonlyArray<SseMessage>): boolean {
    const { state } = this
    for (const message of messages) {
      // As the SDK reads a stream: pings and events without a name or data are skipped.
      if (message.event === undefined || message.event === "ping") continue
      if (message.event === "error") {
        this.fail(fromCause(errorEvent(message.data, this.headers!)))
        return false
      }
      if (message.data === "") continue
      let data: unknown
      try {
        data = JSON.parse(message.data)
      } catch (cause) {
        this.fail(fromCause(cause))
        return false
      }
      const decoded = decode(data)
      if (Either.isLeft(decoded)) {
        this.fail(decoded.left)
        return false
      }
      const event = decoded.right
      const problem = outOfOrder(state, event)
      if (problem !== undefined) {
        this.fail(problem)
        return false
      }
      if (event.type !== "ignored") this.lastEventAt = this.clock.unsafeCurrentTimeMillis()
      const events = toModelEvents(state, event)
      if (events.length > 0) {
        this.isAfterFirstEvent = true
        if (!this.isDone) this.onEvents(events)
      }
    }
    return true
  }
}

const ignore = () => {}

/**
 * One request, push-based: `onEvents` gets the events as they arrive, and the effect ends with the response.
 * Interrupting it aborts the request at once (the canceller); no stream machinery sits in between. An idle
 * response is aborted, then failed, by the model's idle sweep (`idle.ts`), which watches it until it ends.
 */
const attemptPush = (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  request: LanguageModel.TurnRequest,
  onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
): Effect.Effect<void, AttemptFailure> =>
  // (`Effect.clockWith` is this, with two closures more per turn.)
  Effect.withFiberRuntime((fiber) => {
    const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    let attempt: Attempt | undefined
    // Not `Effect.async` with a canceller, whose `onInterrupt` keeps some twenty objects on the fiber's stack for
    // the length of the stream: the wait alone is interruptible, and one handler, run on any failure (its
    // interrupt included), finishes the attempt (which is idempotent: a failure of its own has finished it).
    return Effect.uninterruptible(
      Effect.catchAllCause(
        Effect.interruptible(
          Effect.async<void, AttemptFailure>((resume) => {
            attempt = new Attempt(settings, params, request, onEvents, resume, clock)
            attempt.start()
          })
        ),
        (cause) => {
          attempt?.finish()
          return Effect.failCause(cause)
        }
      )
    )
  })

const askedDelay = (error: ModelError.ModelError): Duration.Duration =>
  (error._tag === "RateLimitError" || error._tag === "OverloadedError" || error._tag === "ServerError") &&
  error.retryAfterMillis !== undefined
    ? Duration.millis(error.retryAfterMillis)
    : Duration.zero

/**
 * Exponential backoff with jitter, at most `maxRetries` times, only for
 * retryable errors of attempts that emitted nothing. The server's
 * `retry-after` lengthens the wait, up to `maxRetryDelay`.
 */
export const retryPolicy = (settings: {
  readonly maxRetries: number
  readonly retryBaseDelay: Duration.Duration
  readonly maxRetryDelay: Duration.Duration
}): Schedule.Schedule<unknown, AttemptFailure> =>
  Schedule.exponential(settings.retryBaseDelay, 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(settings.maxRetries)),
    Schedule.intersect(Schedule.identity<AttemptFailure>()),
    Schedule.whileInput(
      (failure: AttemptFailure) => !failure.isAfterFirstEvent && ModelError.isRetryable(failure.error)
    ),
    Schedule.modifyDelay(([, failure], backoff) =>
      Duration.min(Duration.max(backoff, askedDelay(failure.error)), settings.maxRetryDelay)
    )
  )

/**
 * `Effect.retry`, then the failure's `error`, except that the schedule's driver is only made once an attempt has
 * failed: a turn that succeeds at once (nearly all of them) pays nothing for its retry policy, and a live turn has
 * one frame of it on its fiber's stack (no `mapError` of its own). The first failure is the schedule's first input,
 * as with `Effect.retry`.
 */
const retryAfterFailure =
  (policy: Schedule.Schedule<unknown, AttemptFailure>) =>
  <A, R>(attempt: Effect.Effect<A, AttemptFailure, R>): Effect.Effect<A, ModelError.ModelError, R> =>
    Effect.catchAll(attempt, (first) =>
      Effect.flatMap(Schedule.driver(policy), (driver) => {
        const retry = (failure: AttemptFailure): Effect.Effect<A, ModelError.ModelError, R> =>
          Effect.matchEffect(driver.next(failure), {
            onFailure: () => Effect.fail(failure.error),
            onSuccess: () => Effect.catchAll(attempt, retry)
          })
        return retry(first)
      })
    )

/** One turn, push-based (see `attemptPush`): each attempt waits for a rate-limit permit; retries before the first event. */
export const runTurn = (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  request: LanguageModel.TurnRequest,
  onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
): Effect.Effect<void, ModelError.ModelError> => {
  const once = attemptPush(settings, params, request, onEvents)
  const limited = settings.rateLimiter === undefined ? once : settings.rateLimiter(once)
  return retryAfterFailure(settings.retry)(limited)
}
