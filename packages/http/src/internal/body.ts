import type { HttpServerRequest } from "@effect/platform"
import { HttpIncomingMessage } from "@effect/platform"
import { Effect, Option, ParseResult, Schema } from "effect"
import { BadRequest, InvalidBody, PayloadTooLarge } from "../RouteError.js"

const tooLarge = (limitBytes: number) =>
  new PayloadTooLarge({ message: `the body is larger than ${limitBytes} bytes`, limitBytes })

/**
 * Reads a JSON body of at most `limitBytes` bytes. A declared `content-length`
 * over the limit is refused before anything is read.
 */
export const readJson = (
  request: HttpServerRequest.HttpServerRequest,
  limitBytes: number
): Effect.Effect<unknown, BadRequest | PayloadTooLarge> =>
  Effect.gen(function* () {
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > limitBytes) return yield* tooLarge(limitBytes)
    const text = yield* request.text.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(limitBytes)),
      Effect.mapError((error) =>
        String(error.cause).includes("maxBytes exceeded")
          ? tooLarge(limitBytes)
          : new BadRequest({ message: "the body could not be read" })
      )
    )
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
