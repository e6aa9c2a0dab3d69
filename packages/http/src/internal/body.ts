import { IncomingMessage } from "node:http"
import type { HttpServerRequest } from "@effect/platform"
import { HttpIncomingMessage } from "@effect/platform"
import { Effect, Option, ParseResult, Schema } from "effect"
import { BadRequest, InvalidBody, PayloadTooLarge, UnsupportedMediaType } from "../RouteError.js"

const tooLarge = (limitBytes: number) =>
  new PayloadTooLarge({ message: `the body is larger than ${limitBytes} bytes`, limitBytes })

const unreadable = () => new BadRequest({ message: "the body could not be read" })

/** How much of an over-limit body is read and dropped so that the 413 reaches its client; past it the socket closes. */
const drainFactor = 16

/**
 * A Node request's body, read here rather than by the platform: past the limit the platform destroys the request,
 * so a client still sending (a chunked body has no length to refuse up front) gets a reset instead of the 413. Here
 * the rest is read and dropped, up to `drainFactor` times the limit, while the 413 goes out.
 */
const readNodeText = (
  source: IncomingMessage,
  limitBytes: number
): Effect.Effect<string, BadRequest | PayloadTooLarge> =>
  Effect.async((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const stop = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limitBytes) return void chunks.push(chunk)
      stop()
      drop(source, limitBytes * drainFactor)
      resume(Effect.fail(tooLarge(limitBytes)))
    }
    const onEnd = () => {
      stop()
      resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    }
    const onError = () => {
      stop()
      resume(Effect.fail(unreadable()))
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    return Effect.sync(stop)
  })

/** Reads and drops the rest of a body, closing the socket past `cap` bytes. */
const drop = (source: IncomingMessage, cap: number) => {
  let dropped = 0
  const onData = (chunk: Buffer) => {
    dropped += chunk.length
    if (dropped <= cap) return
    source.off("data", onData)
    source.destroy()
  }
  source.on("data", onData)
  source.on("error", () => {})
}

/** The body as text, at most `limitBytes` bytes of it. */
const readText = (
  request: HttpServerRequest.HttpServerRequest,
  limitBytes: number
): Effect.Effect<string, BadRequest | PayloadTooLarge> =>
  request.source instanceof IncomingMessage
    ? readNodeText(request.source, limitBytes)
    : request.text.pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(limitBytes)),
        Effect.mapError((error) =>
          String(error.cause).includes("maxBytes exceeded") ? tooLarge(limitBytes) : unreadable()
        )
      )

/** `application/json` or `application/<anything>+json`, with any parameters. */
const isJsonMediaType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  const essence = contentType.split(";", 1)[0]!.trim().toLowerCase()
  return essence === "application/json" || (essence.startsWith("application/") && essence.endsWith("+json"))
}

/**
 * Reads a JSON body of at most `limitBytes` bytes. A declared `content-length`
 * over the limit is refused before anything is read; a body not declared as
 * JSON is refused once read (so that the refusal reaches a client still sending).
 */
export const readJson = (
  request: HttpServerRequest.HttpServerRequest,
  limitBytes: number
): Effect.Effect<unknown, BadRequest | PayloadTooLarge | UnsupportedMediaType> =>
  Effect.gen(function* () {
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > limitBytes) return yield* tooLarge(limitBytes)
    const text = yield* readText(request, limitBytes)
    const contentType = request.headers["content-type"]
    if (!isJsonMediaType(contentType)) {
      return yield* new UnsupportedMediaType({
        message:
          contentType === undefined
            ? "the body must be sent as application/json (the request has no content-type)"
            : `the body must be sent as application/json, not ${JSON.stringify(contentType)}`
      })
    }
    if (Buffer.byteLength(text, "utf8") > limitBytes) return yield* tooLarge(limitBytes)
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
