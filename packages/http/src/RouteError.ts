/**
 * What the session routes answer when they refuse a request. Every refusal is
 * a typed error with a `_tag` and a `message`; `toResponse` turns it into a JSON
 * body `{ "error": { "_tag", "message", ... } }` with the matching status. A
 * refused request changes nothing: no session is claimed, no run starts or stops.
 *
 * @example
 * ```ts
 * import { RouteError } from "@tether/http"
 *
 * const notFound = new RouteError.SessionNotFound({ sessionId: "s-1", message: "no such session" })
 * const response = RouteError.toResponse(notFound)
 * // response.status === 404
 * ```
 *
 * @since 0.1.0
 */
import { HttpServerResponse } from "@effect/platform"
import { Schema } from "effect"
import { scrub } from "./internal/clientText.js"

/**
 * No credentials, or credentials that did not verify (401).
 *
 * @since 0.1.0
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", { message: Schema.String }) {}

/**
 * The session belongs to another caller (403).
 *
 * @since 0.1.0
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  message: Schema.String,
  sessionId: Schema.String
}) {}

/**
 * No session (or no run) with this id (404).
 *
 * @since 0.1.0
 */
export class SessionNotFound extends Schema.TaggedError<SessionNotFound>()("SessionNotFound", {
  message: Schema.String,
  sessionId: Schema.String
}) {}

/**
 * The request is malformed: a body that is not JSON, a bad session id or `Last-Event-ID` (400).
 *
 * @since 0.1.0
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", { message: Schema.String }) {}

/**
 * One problem of a body that did not match its Schema, with the path of the bad field.
 *
 * @since 0.1.0
 */
export const Issue = Schema.Struct({ path: Schema.Array(Schema.String), message: Schema.String })
/** @since 0.1.0 */
export type Issue = typeof Issue.Type

/**
 * The body is JSON but does not match the route's Schema (422); `issues` name the bad fields.
 *
 * @since 0.1.0
 */
export class InvalidBody extends Schema.TaggedError<InvalidBody>()("InvalidBody", {
  message: Schema.String,
  issues: Schema.Array(Issue)
}) {}

/**
 * The body is larger than the route accepts (413).
 *
 * @since 0.1.0
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String,
  limitBytes: Schema.Number
}) {}

/**
 * The body did not arrive in time (408): a client sending it slower than `SessionRoutes.Limits.bodyTimeout` allows.
 * The connection is closed after the answer.
 *
 * @since 0.1.0
 */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", {
  message: Schema.String,
  timeoutMillis: Schema.Number
}) {}

/**
 * The body is not declared as JSON (415): `content-type` must be `application/json` (parameters such as a charset
 * are allowed) or another `application/*+json` type. Refusing other types keeps a cross-site HTML form or a
 * no-preflight `fetch` (`text/plain`, form encodings) from starting runs.
 *
 * @since 0.1.0
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()("UnsupportedMediaType", {
  message: Schema.String
}) {}

/**
 * The session's run is still going and the route refuses to start another (409).
 *
 * @since 0.1.0
 */
export class SessionBusy extends Schema.TaggedError<SessionBusy>()("SessionBusy", {
  message: Schema.String,
  sessionId: Schema.String,
  runId: Schema.String
}) {}

/**
 * The caller already has as many runs going as it may (429).
 *
 * @since 0.1.0
 */
export class TooManyRuns extends Schema.TaggedError<TooManyRuns>()("TooManyRuns", {
  message: Schema.String,
  limit: Schema.Number
}) {}

/**
 * The server has as many runs going as it serves well, and its queue of starts is full (or the start waited in it
 * past its deadline): nothing was started; try again after `retryAfterSeconds` (503, with `Retry-After`).
 *
 * @since 0.1.0
 */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", {
  message: Schema.String,
  limit: Schema.Number,
  retryAfterSeconds: Schema.Number
}) {}

/**
 * The session store failed (a database down): nothing was started or stopped; try again (503).
 *
 * @since 0.1.0
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  message: Schema.String
}) {}

/** @since 0.1.0 */
export type RouteError =
  | Unauthorized
  | Forbidden
  | SessionNotFound
  | BadRequest
  | InvalidBody
  | PayloadTooLarge
  | RequestTimeout
  | UnsupportedMediaType
  | SessionBusy
  | TooManyRuns
  | Overloaded
  | StoreUnavailable

/**
 * The HTTP status of a refusal.
 *
 * @since 0.1.0
 */
export const status = (error: RouteError): number => {
  switch (error._tag) {
    case "Unauthorized":
      return 401
    case "Forbidden":
      return 403
    case "SessionNotFound":
      return 404
    case "BadRequest":
      return 400
    case "InvalidBody":
      return 422
    case "PayloadTooLarge":
      return 413
    case "RequestTimeout":
      return 408
    case "UnsupportedMediaType":
      return 415
    case "SessionBusy":
      return 409
    case "TooManyRuns":
      return 429
    case "Overloaded":
    case "StoreUnavailable":
      return 503
  }
}

/** `value` with every string in it scrubbed of stack frames and server paths. */
const scrubAll = (value: unknown): unknown => {
  if (typeof value === "string") return scrub(value)
  if (Array.isArray(value)) return value.map(scrubAll)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, scrubAll(field)]))
  }
  return value
}

/**
 * The JSON body of a refusal: `{ error: { _tag, message, ...fields } }`, its texts without stack frames or server
 * paths.
 *
 * @since 0.1.0
 */
export const toJson = (error: RouteError): { readonly error: Record<string, unknown> } => {
  const fields: Record<string, unknown> = { _tag: error._tag, message: scrub(error.message) }
  for (const [key, value] of Object.entries(error)) {
    if (key !== "_tag" && key !== "message") fields[key] = scrubAll(value)
  }
  return { error: fields }
}

/**
 * The headers of a refusal: `WWW-Authenticate` on a 401; `Connection: close` on a 408 (the client was slow);
 * `Retry-After` on `Overloaded`.
 */
const headersOf = (error: RouteError): Record<string, string> => {
  switch (error._tag) {
    case "Unauthorized":
      return { "www-authenticate": 'Bearer realm="tether"' }
    case "RequestTimeout":
      return { connection: "close" }
    case "Overloaded":
      return { "retry-after": String(error.retryAfterSeconds) }
    default:
      return {}
  }
}

/**
 * The response for a refusal, with `WWW-Authenticate` on a 401, `Connection: close` on a 408 and `Retry-After` on
 * `Overloaded`.
 *
 * @since 0.1.0
 */
export const toResponse = (error: RouteError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(toJson(error), { status: status(error), headers: headersOf(error) })
