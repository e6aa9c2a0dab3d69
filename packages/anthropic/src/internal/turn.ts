import type Anthropic from "@anthropic-ai/sdk"
import { APIError } from "@anthropic-ai/sdk"
import type { LanguageModel } from "@tether/core"
import { ModelError } from "@tether/core"
import { Duration, Effect, Either, Schedule } from "effect"
import type { Clock, RateLimiter } from "effect"
import { fromCause } from "./errors.js"
import { decode, initialState, outOfOrder, toModelEvents } from "./events.js"
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

/** What one attempt has done so far: its reader (`pump`) writes it; the idle sweep and its release read it. */
interface Progress extends Watched {
  /** The response was read to its end. */
  isRead: boolean
  isAfterFirstEvent: boolean
  lastEventAt: number | undefined
}

/** Where a response's events go: the callbacks of the push-based turn. */
interface Sink {
  readonly array: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
  readonly fail: (failure: AttemptFailure) => void
  readonly end: () => void
  readonly die: (defect: unknown) => void
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

/**
 * Reads one streamed response into `emit`, recording its `progress` (times on `clock`). The body is read as it
 * arrives and decoded here (`sse.ts`, with the size caps): the SDK only sends the request and checks its status.
 * It never rejects and never emits once `signal` is aborted: by then the stream's consumer is gone.
 */
const pump = async (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  signal: AbortSignal,
  emit: Sink,
  progress: Progress,
  clock: Clock.Clock
): Promise<void> => {
  const fail = (error: ModelError.ModelError) => {
    if (!signal.aborted) emit.fail({ error, isAfterFirstEvent: progress.isAfterFirstEvent })
  }
  try {
    let response: Response
    try {
      response = await settings.client.messages.create(params, { signal }).asResponse()
    } catch (cause) {
      return fail(fromCause(cause))
    }
    progress.lastEventAt = clock.unsafeCurrentTimeMillis()
    if (response.body === null) {
      return fail(new ModelError.MalformedResponseError({ message: "the response has no body" }))
    }
    const reader = response.body.getReader()
    const sse = decoder(settings.limits)
    const state = initialState()
    /** Maps the messages to events and emits them; false once the attempt has failed. */
    const take = (messages: ReadonlyArray<SseMessage>): boolean => {
      for (const message of messages) {
        // As the SDK reads a stream: pings and events without a name or data are skipped.
        if (message.event === undefined || message.event === "ping") continue
        if (message.event === "error") {
          fail(fromCause(errorEvent(message.data, response.headers)))
          return false
        }
        if (message.data === "") continue
        let data: unknown
        try {
          data = JSON.parse(message.data)
        } catch (cause) {
          fail(fromCause(cause))
          return false
        }
        const event = Either.flatMap(decode(data), (decoded) => {
          const problem = outOfOrder(state, decoded)
          return problem === undefined ? Either.right(decoded) : Either.left(problem)
        })
        if (Either.isLeft(event)) {
          fail(event.left)
          return false
        }
        if (event.right.type !== "ignored") progress.lastEventAt = clock.unsafeCurrentTimeMillis()
        const events = toModelEvents(state, event.right)
        if (events.length > 0) {
          progress.isAfterFirstEvent = true
          emit.array(events)
        }
      }
      return true
    }
    /** Stops reading: nothing more of the body is read or buffered (the release then closes the connection). */
    const stop = () => void reader.cancel().catch(() => {})
    while (true) {
      let chunk: ReadableStreamReadResult<Uint8Array>
      try {
        chunk = await reader.read()
      } catch (cause) {
        // A read that fails because the request was aborted is not the end of the turn.
        return signal.aborted ? undefined : fail(fromCause(cause))
      }
      if (signal.aborted) return stop()
      if (chunk.done) break
      const messages = sse.push(chunk.value)
      if (typeof messages === "string") {
        fail(capError(settings.limits, messages))
        return stop()
      }
      if (!take(messages)) return stop()
    }
    if (!take(sse.end())) return
    if (!state.isStopped) {
      return fail(new ModelError.MalformedResponseError({ message: "the stream ended before message_stop" }))
    }
    progress.isRead = true
    emit.end()
  } catch (defect) {
    if (!signal.aborted) emit.die(defect)
  }
}

/** False where the intrinsics are frozen (`node --frozen-intrinsics`): then the errors keep their stacks. */
const canSetStackTraceLimit = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")?.writable === true

/**
 * Aborts one request's controller with stack traces off. The listeners that run in this call are the SDK's and
 * fetch's own (a request's controller is private to it): each makes an abort error (the SDK's controller aborts
 * without a reason, so a DOMException; fetch an error of its own), and Node's socket teardown reads each error's
 * stack, which it then formats, before it closes the socket. Nobody reads these errors: the run ends with its
 * `CancelReason`. Without stacks they cost a fraction (measured: ~0.6 ms less from cancel to outcome for a tree
 * with ten open streams, ~0.2-0.35 s less to quiesce 5000 streams), on the path from the cancel to the socket's
 * close. Only this call is affected: the limit is restored before it returns.
 */
const abortQuietly = (controller: AbortController, reason: unknown): void => {
  if (!canSetStackTraceLimit) return controller.abort(reason)
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    controller.abort(reason)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * The AbortController of one request, aborted by the run's own signal as well: that one is aborted synchronously
 * in the call that cancels the run, so the socket closes before any fiber has even begun to unwind. `release`
 * leaves a response read to its end alone (aborting it would cost the keep-alive connection).
 */
const requestController = (cancelled: AbortSignal | undefined, progress: { readonly isRead: boolean }) => {
  const controller = new AbortController()
  // The run's reason goes along (no new DOMException per request).
  const onCancel = () => abortQuietly(controller, cancelled?.reason)
  if (cancelled?.aborted) abortQuietly(controller, cancelled.reason)
  else cancelled?.addEventListener("abort", onCancel, { once: true })
  const release = () => {
    cancelled?.removeEventListener("abort", onCancel)
    // (Checked first: `abort()` builds its DOMException even when the controller is already aborted, as it is after
    // a cancel.)
    if (!progress.isRead && !controller.signal.aborted) abortQuietly(controller, undefined)
  }
  return { signal: controller.signal, release }
}

/**
 * One request, push-based: `onEvents` gets the events as they arrive, and the effect ends with the response.
 * Interrupting it aborts the request at once (the canceller); no stream machinery sits in between. An idle
 * response is aborted, then failed, by the model's idle sweep (`idle.ts`), which watches it until it ends.
 */
const attemptPush = (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  cancelled: AbortSignal | undefined,
  onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
): Effect.Effect<void, AttemptFailure> =>
  Effect.clockWith((clock) =>
    Effect.async<void, AttemptFailure>((resume) => {
      const { idle } = settings
      let isDone = false
      const progress: Progress = {
        isRead: false,
        isAfterFirstEvent: false,
        lastEventAt: undefined,
        onIdle: (error) => done(Effect.fail({ error, isAfterFirstEvent: progress.isAfterFirstEvent }))
      }
      const { signal, release } = requestController(cancelled, progress)
      const finish = () => {
        isDone = true
        idle?.unwatch(progress)
        release()
      }
      const done = (effect: Effect.Effect<void, AttemptFailure>) => {
        if (isDone) return
        finish()
        resume(effect)
      }
      idle?.watch(clock, progress)
      void pump(
        settings,
        params,
        signal,
        {
          array: (events) => {
            if (!isDone) onEvents(events)
          },
          fail: (failure) => done(Effect.fail(failure)),
          end: () => done(Effect.void),
          die: (defect) => done(Effect.die(defect))
        },
        progress,
        clock
      )
      return Effect.sync(finish)
    })
  )

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
 * `Effect.retry`, except that the schedule's driver is only made once an attempt has failed: a turn that
 * succeeds at once (nearly all of them) pays nothing for its retry policy. The first failure is the
 * schedule's first input, as with `Effect.retry`.
 */
const retryAfterFailure =
  (policy: Schedule.Schedule<unknown, AttemptFailure>) =>
  <A, R>(attempt: Effect.Effect<A, AttemptFailure, R>): Effect.Effect<A, AttemptFailure, R> =>
    Effect.catchAll(attempt, (first) =>
      Effect.flatMap(Schedule.driver(policy), (driver) => {
        const retry = (failure: AttemptFailure): Effect.Effect<A, AttemptFailure, R> =>
          Effect.matchEffect(driver.next(failure), {
            onFailure: () => Effect.fail(failure),
            onSuccess: () => Effect.catchAll(attempt, retry)
          })
        return retry(first)
      })
    )

/** One turn, push-based (see `attemptPush`): each attempt waits for a rate-limit permit; retries before the first event. */
export const runTurn = (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  cancelled: AbortSignal | undefined,
  onEvents: (events: ReadonlyArray<LanguageModel.ModelEvent>) => void
): Effect.Effect<void, ModelError.ModelError> => {
  const once = attemptPush(settings, params, cancelled, onEvents)
  const limited = settings.rateLimiter === undefined ? once : settings.rateLimiter(once)
  return limited.pipe(
    retryAfterFailure(settings.retry),
    Effect.mapError((failure) => failure.error)
  )
}
