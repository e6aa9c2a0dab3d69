import type { HttpServerRequest } from "@effect/platform"
import { Chunk, Duration, Effect, Either, Exit, Option, ParseResult, Schema, Scope, Stream } from "effect"
import { BadRequest, InvalidBody, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from "../RouteError.js"

const tooLarge = (limitBytes: number) =>
  new PayloadTooLarge({ message: `the body is larger than ${limitBytes} bytes`, limitBytes })

const unreadable = () => new BadRequest({ message: "the body could not be read" })

/** How much of an over-limit body is read and dropped so that the 413 reaches its client; past it the socket closes. */
const drainFactor = 16

/** How long the rest of an over-limit body is read and dropped at most. */
const drainWindow = Duration.seconds(10)

/**
 * Reads and drops what `pull` still gives, up to `capBytes` or `drainWindow`, then closes `scope` (which lets go of
 * the request: past the cap a client still sending has its connection closed).
 */
const drain = (
  pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<unknown>>,
  capBytes: number,
  scope: Scope.CloseableScope
) => {
  let dropped = 0
  const dropNext = Effect.map(pull, (chunk) => {
    for (const part of chunk) dropped += part.length
  })
  return Effect.whileLoop({ while: () => dropped <= capBytes, body: () => dropNext, step: () => {} }).pipe(
    Effect.ignore,
    Effect.timeout(drainWindow),
    Effect.ignore,
    Effect.ensuring(Scope.close(scope, Exit.void))
  )
}

/** How long the request stream stays open after its reading was interrupted (a deadline, a client gone). */
const closeGrace = Duration.seconds(1)

/**
 * The body as text, at most `limitBytes` bytes of it, read from the platform's stream of the request. Past the limit
 * the rest is read and dropped in the background (up to `drainFactor` times the limit, for at most `drainWindow`)
 * while the 413 goes out: a client still sending (a chunked body has no length to refuse up front) then reads the
 * 413 instead of a reset. Interrupted (the body's deadline passed, the client went away), it lets go of the stream
 * `closeGrace` later, so that a 408 is written before the connection closes.
 */
const readText = (
  request: HttpServerRequest.HttpServerRequest,
  limitBytes: number
): Effect.Effect<{ readonly text: string; readonly bytes: number }, BadRequest | PayloadTooLarge> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const pull = yield* Scope.extend(Stream.toPull(request.stream), scope)
      // Bounded in time: a daemon, so that the end of the request's scope does not cut the grace short.
      const closeSoon = Effect.forkDaemon(Effect.delay(Scope.close(scope, Exit.void), closeGrace))
      const parts: Array<Uint8Array> = []
      let bytes = 0
      while (true) {
        const next = yield* Effect.either(restore(pull)).pipe(Effect.onInterrupt(() => closeSoon))
        if (Either.isLeft(next)) {
          yield* Scope.close(scope, Exit.void)
          if (Option.isSome(next.left)) return yield* unreadable()
          const whole = new Uint8Array(bytes)
          let offset = 0
          for (const part of parts) {
            whole.set(part, offset)
            offset += part.length
          }
          return { text: new TextDecoder().decode(whole), bytes }
        }
        for (const part of next.right) {
          bytes += part.length
          parts.push(part)
        }
        if (bytes > limitBytes) {
          // Bounded by bytes and by time, so it cannot outlive the request by much: a daemon, so that the end of
          // the request's scope (once the 413 is written) does not cut it short.
          yield* Effect.forkDaemon(drain(pull, limitBytes * drainFactor - bytes, scope))
          return yield* tooLarge(limitBytes)
        }
      }
    })
  )

/** `application/json` or `application/<anything>+json`, with any parameters. */
const isJsonMediaType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  const essence = contentType.split(";", 1)[0]!.trim().toLowerCase()
  return essence === "application/json" || (essence.startsWith("application/") && essence.endsWith("+json"))
}

/**
 * Reads a JSON body of at most `limitBytes` bytes, whole within `timeout`. A
 * declared `content-length` over the limit is refused before anything is read;
 * a body not declared as JSON is refused once read (so that the refusal reaches
 * a client still sending); a body still arriving after `timeout` is
 * `RequestTimeout` (its reading stops, and the 408 closes the connection).
 */
export const readJson = (
  request: HttpServerRequest.HttpServerRequest,
  limits: { readonly limitBytes: number; readonly timeout: Duration.DurationInput }
): Effect.Effect<unknown, BadRequest | PayloadTooLarge | RequestTimeout | UnsupportedMediaType> =>
  Effect.gen(function* () {
    const { limitBytes } = limits
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > limitBytes) return yield* tooLarge(limitBytes)
    const timeoutMillis = Duration.toMillis(Duration.decode(limits.timeout))
    const { bytes, text } = yield* readText(request, limitBytes).pipe(
      Effect.timeoutFail({
        duration: limits.timeout,
        onTimeout: () =>
          new RequestTimeout({ message: `the body did not arrive within ${timeoutMillis} ms`, timeoutMillis })
      })
    )
    const contentType = request.headers["content-type"]
    if (!isJsonMediaType(contentType)) {
      return yield* new UnsupportedMediaType({
        message:
          contentType === undefined
            ? "the body must be sent as application/json (the request has no content-type)"
            : `the body must be sent as application/json, not ${JSON.stringify(contentType)}`
      })
    }
    if (bytes > limitBytes) return yield* tooLarge(limitBytes)
    if (text.trim() === "") return yield* new BadRequest({ message: "the body is empty; expected a JSON object" })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) =>
        new BadRequest({
          message: `the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`
        })
    })
    // Schema's error formatting walks the value recursively: a body nested thousands deep would overflow it.
    if (depthOf(json) > maxDepth) {
      return yield* new BadRequest({ message: `the body is nested deeper than ${maxDepth} levels` })
    }
    return json
  })

const maxDepth = 64

/** How deeply arrays and objects nest in a parsed JSON value (iterative: it must not overflow either). */
const depthOf = (value: unknown): number => {
  let deepest = 0
  const pending: Array<readonly [unknown, number]> = [[value, 1]]
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!
    if (typeof current !== "object" || current === null) continue
    deepest = Math.max(deepest, depth)
    if (deepest > maxDepth) return deepest
    for (const child of Object.values(current)) pending.push([child, depth + 1])
  }
  return deepest
}

/** Decodes a body with `schema`; a mismatch is `InvalidBody` naming the path of each bad field. */
export const decode = <A, I>(schema: Schema.Schema<A, I>, body: unknown): Effect.Effect<A, InvalidBody> =>
  Schema.decodeUnknown(schema, { errors: "all" })(body).pipe(
    Effect.mapError((error) => {
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
        path: issue.path.map(String),
        message: issue.message
      }))
      const first = issues[0]
      const where = first === undefined || first.path.length === 0 ? "the body" : first.path.join(".")
      return new InvalidBody({ message: `${where}: ${first?.message ?? "does not match"}`, issues })
    })
  )
