import { APIConnectionError, APIConnectionTimeoutError, APIError, AnthropicError } from "@anthropic-ai/sdk"
import { ModelError } from "@tether/core"

/**
 * How long the server asked us to wait: `retry-after-ms`, else `retry-after`
 * in seconds or as an HTTP date. `undefined` when absent or unreadable.
 */
export const retryAfterMillis = (headers: Headers | undefined, now: number = Date.now()): number | undefined => {
  const millis = Number.parseFloat(headers?.get("retry-after-ms") ?? "")
  if (Number.isFinite(millis) && millis >= 0) return millis
  const value = headers?.get("retry-after")?.trim()
  if (value === undefined || value === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** A rejected key, said once in a line a person can act on: what to check, where keys come from. */
const rejectedKey = (message: string, status?: number): ModelError.AuthenticationError =>
  new ModelError.AuthenticationError({
    message:
      `the Anthropic API rejected the API key (${message}): check ANTHROPIC_API_KEY (or the apiKey given to ` +
      "AnthropicModel): a current key from https://console.anthropic.com/settings/keys, not revoked, without quotes " +
      "or spaces",
    ...(status === undefined ? {} : { status })
  })

const fromStatus = (status: number, message: string, headers: Headers | undefined): ModelError.ModelError => {
  switch (status) {
    case 401:
      return rejectedKey(message, status)
    case 402:
    case 403:
      return new ModelError.PermissionError({ message, status })
    case 404:
      return new ModelError.NotFoundError({ message, status })
    case 408:
      return new ModelError.ConnectionError({ message, status })
    case 429:
      return new ModelError.RateLimitError({ message, status, retryAfterMillis: retryAfterMillis(headers) })
    case 529:
      return new ModelError.OverloadedError({ message, status, retryAfterMillis: retryAfterMillis(headers) })
  }
  if (status >= 500) return new ModelError.ServerError({ message, status, retryAfterMillis: retryAfterMillis(headers) })
  if (status === 409) return new ModelError.ServerError({ message, status })
  return new ModelError.InvalidRequestError({ message, status })
}

/** An `error` event inside a stream has no status: its body's `error.type` says what it was. */
const fromErrorType = (type: string | null, message: string): ModelError.ModelError => {
  switch (type) {
    case "authentication_error":
      return rejectedKey(message)
    case "permission_error":
    case "billing_error":
      return new ModelError.PermissionError({ message })
    case "not_found_error":
      return new ModelError.NotFoundError({ message })
    case "invalid_request_error":
    case "request_too_large":
      return new ModelError.InvalidRequestError({ message })
    case "rate_limit_error":
      return new ModelError.RateLimitError({ message })
    case "overloaded_error":
      return new ModelError.OverloadedError({ message })
    case "timeout_error":
      return new ModelError.ConnectionError({ message })
    default:
      return new ModelError.ServerError({ message })
  }
}

const describe = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : ""
  return `${cause.message}${inner}`
}

/**
 * Maps whatever the SDK or the transport threw onto a typed error. Bad server
 * output is never a defect: unreadable JSON or SSE is `MalformedResponseError`,
 * anything else from below the API is a `ConnectionError`.
 */
export const fromCause = (cause: unknown): ModelError.ModelError => {
  if (cause instanceof APIConnectionTimeoutError) {
    return new ModelError.ConnectionError({ message: `request timed out: ${describe(cause)}` })
  }
  if (cause instanceof APIConnectionError) return new ModelError.ConnectionError({ message: describe(cause) })
  if (cause instanceof APIError) {
    const message = cause.apiMessage ?? cause.message
    return cause.status === undefined
      ? fromErrorType(cause.type, message)
      : fromStatus(cause.status, message, cause.headers)
  }
  if (cause instanceof SyntaxError) {
    return new ModelError.MalformedResponseError({ message: `response is not valid JSON: ${cause.message}` })
  }
  if (cause instanceof AnthropicError) return new ModelError.MalformedResponseError({ message: describe(cause) })
  return new ModelError.ConnectionError({ message: describe(cause) })
}
