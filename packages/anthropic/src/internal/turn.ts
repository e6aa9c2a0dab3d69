import type Anthropic from "@anthropic-ai/sdk"
import type { LanguageModel } from "@tether/core"
import { ModelError } from "@tether/core"
import { Duration, Effect, Either, Schedule, Stream } from "effect"
import type { RateLimiter, StreamEmit } from "effect"
import { fromCause } from "./errors.js"
import { decode, initialState, outOfOrder, toModelEvents } from "./events.js"

/** How one attempt failed, and whether it had already emitted events (then it must not be replayed). */
export interface AttemptFailure {
  readonly error: ModelError.ModelError
  readonly isAfterFirstEvent: boolean
}

export interface TurnSettings {
  readonly client: Anthropic
  readonly model: string
  readonly maxRetries: number
  readonly retryBaseDelay: Duration.Duration
  readonly maxRetryDelay: Duration.Duration
  readonly rateLimiter: RateLimiter.RateLimiter | undefined
}

type Emit = StreamEmit.EmitOpsPush<AttemptFailure, LanguageModel.ModelEvent>

/**
 * Reads one streamed response into `emit`. It never rejects and never emits
 * once `signal` is aborted: by then the stream's consumer is gone.
 */
const pump = async (
  client: Anthropic,
  params: Anthropic.MessageCreateParamsStreaming,
  signal: AbortSignal,
  emit: Emit,
  finished: { isRead: boolean }
): Promise<void> => {
  let isAfterFirstEvent = false
  const fail = (error: ModelError.ModelError) => {
    if (!signal.aborted) emit.fail({ error, isAfterFirstEvent })
  }
  try {
    let response: AsyncIterable<unknown>
    try {
      response = await client.messages.create(params, { signal })
    } catch (cause) {
      return fail(fromCause(cause))
    }
    const iterator = response[Symbol.asyncIterator]()
    const state = initialState()
    while (true) {
      let next: IteratorResult<unknown>
      try {
        next = await iterator.next()
      } catch (cause) {
        return fail(fromCause(cause))
      }
      // The SDK ends its iteration quietly on abort: that is not the end of the turn.
      if (signal.aborted) return
      if (next.done) break
      const event = Either.flatMap(decode(next.value), (decoded) => {
        const problem = outOfOrder(state, decoded)
        return problem === undefined ? Either.right(decoded) : Either.left(problem)
      })
      if (Either.isLeft(event)) {
        fail(event.left)
        // Settle the SDK's generator (it aborts its request in `finally`); nothing awaits it.
        iterator.return?.().catch(() => {})
        return
      }
      const events = toModelEvents(state, event.right)
      if (events.length > 0) {
        isAfterFirstEvent = true
        emit.array(events)
      }
    }
    if (!state.isStopped) {
      return fail(new ModelError.MalformedResponseError({ message: "the stream ended before message_stop" }))
    }
    finished.isRead = true
    emit.end()
  } catch (defect) {
    if (!signal.aborted) emit.die(defect)
  }
}

/**
 * One request. The AbortController is released by the stream's scope, so when
 * the consumer is interrupted the first thing that happens is `abort()`: the
 * socket closes now, and nothing waits on the SDK's iterator (the pending read
 * settles by itself, into a mailbox that is already shut).
 */
const attempt = (
  client: Anthropic,
  params: Anthropic.MessageCreateParamsStreaming,
  cancelled: AbortSignal | undefined
): Stream.Stream<LanguageModel.ModelEvent, AttemptFailure> =>
  Stream.asyncPush<LanguageModel.ModelEvent, AttemptFailure>((emit) => {
    const finished = { isRead: false }
    return Effect.acquireRelease(
      Effect.sync(() => {
        const controller = new AbortController()
        // The run's own signal aborts the request synchronously, in the call that cancels the run: the socket
        // closes before any fiber has even begun to unwind.
        const onCancel = () => controller.abort()
        if (cancelled?.aborted) controller.abort()
        else cancelled?.addEventListener("abort", onCancel, { once: true })
        return { controller, onCancel }
      }),
      // A response read to its end is left alone: aborting it would cost the keep-alive connection.
      ({ controller, onCancel }) =>
        Effect.sync(() => {
          cancelled?.removeEventListener("abort", onCancel)
          if (!finished.isRead) controller.abort()
        })
    ).pipe(
      Effect.tap(({ controller }) =>
        Effect.sync(() => {
          void pump(client, params, controller.signal, emit, finished)
        })
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
export const retryPolicy = (settings: Pick<TurnSettings, "maxRetries" | "retryBaseDelay" | "maxRetryDelay">) =>
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

/** One turn: request, map, retry before the first event; each attempt waits for a rate-limit permit. */
export const streamTurn = (
  settings: TurnSettings,
  params: Anthropic.MessageCreateParamsStreaming,
  cancelled?: AbortSignal | undefined
): Stream.Stream<LanguageModel.ModelEvent, ModelError.ModelError> => {
  const once = attempt(settings.client, params, cancelled)
  const limited = settings.rateLimiter === undefined ? once : Stream.unwrap(settings.rateLimiter(Effect.succeed(once)))
  return limited.pipe(
    Stream.retry(retryPolicy(settings)),
    Stream.mapError((failure) => failure.error)
  )
}
