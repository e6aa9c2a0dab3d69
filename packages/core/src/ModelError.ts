/**
 * Typed failures of a model provider. Providers map their transport and API
 * errors onto these; `isRetryable` says which of them a retry may cure.
 *
 * @example
 * ```ts
 * import { ModelError } from "@tether/core"
 *
 * const error = new ModelError.RateLimitError({ message: "slow down", retryAfterMillis: 2000 })
 * ModelError.isRetryable(error) // true
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const fields = { message: Schema.String, status: Schema.optional(Schema.Number) }

/**
 * The API key was missing or rejected (401).
 *
 * @since 0.1.0
 */
export class AuthenticationError extends Schema.TaggedError<AuthenticationError>()("AuthenticationError", fields) {}
/**
 * The key may not use this resource (403).
 *
 * @since 0.1.0
 */
export class PermissionError extends Schema.TaggedError<PermissionError>()("PermissionError", fields) {}
/**
 * The model or endpoint does not exist (404).
 *
 * @since 0.1.0
 */
export class NotFoundError extends Schema.TaggedError<NotFoundError>()("NotFoundError", fields) {}
/**
 * The request was malformed or too large (400, 413, 422).
 *
 * @since 0.1.0
 */
export class InvalidRequestError extends Schema.TaggedError<InvalidRequestError>()("InvalidRequestError", fields) {}
/**
 * Too many requests (429). `retryAfterMillis` comes from the `retry-after` header.
 *
 * @since 0.1.0
 */
export class RateLimitError extends Schema.TaggedError<RateLimitError>()("RateLimitError", {
  ...fields,
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}
/**
 * The provider is overloaded (529).
 *
 * @since 0.1.0
 */
export class OverloadedError extends Schema.TaggedError<OverloadedError>()("OverloadedError", {
  ...fields,
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}
/**
 * The provider failed (5xx); a 503 may say when to come back (`retry-after`).
 *
 * @since 0.1.0
 */
export class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  ...fields,
  retryAfterMillis: Schema.optional(Schema.Number)
}) {}
/**
 * The connection failed, timed out or was reset.
 *
 * @since 0.1.0
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", fields) {}
/**
 * A streamed response went quiet: no event of the protocol (a `ping` does not count) for `idleMillis` after the
 * response headers or the last event. The request was aborted.
 *
 * @since 0.1.0
 */
export class StreamIdleTimeoutError extends Schema.TaggedError<StreamIdleTimeoutError>()("StreamIdleTimeoutError", {
  ...fields,
  idleMillis: Schema.Number
}) {}
/**
 * The provider answered something that is not the protocol (bad JSON, bad SSE, a line or an event over its size cap).
 *
 * @since 0.1.0
 */
export class MalformedResponseError extends Schema.TaggedError<MalformedResponseError>()(
  "MalformedResponseError",
  fields
) {}

/** @since 0.1.0 */
export type ModelError =
  | AuthenticationError
  | PermissionError
  | NotFoundError
  | InvalidRequestError
  | RateLimitError
  | OverloadedError
  | ServerError
  | ConnectionError
  | StreamIdleTimeoutError
  | MalformedResponseError

/**
 * True for failures a later retry may cure: rate limits, overload, server and connection errors, a stream that
 * went quiet.
 *
 * @since 0.1.0
 */
export const isRetryable = (error: ModelError): boolean =>
  error._tag === "RateLimitError" ||
  error._tag === "OverloadedError" ||
  error._tag === "ServerError" ||
  error._tag === "ConnectionError" ||
  error._tag === "StreamIdleTimeoutError"
