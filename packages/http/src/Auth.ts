/**
 * Who is calling. Every session route asks `Auth` for the caller before it
 * looks at the session: a session records its owner when it first starts, and
 * only that caller may start, read, stream or stop it. A session id alone
 * grants nothing.
 *
 * Two layers come with the package: bearer tokens (`Authorization: Bearer ...`,
 * for APIs and tests) and an HMAC-signed cookie (for a web page that hands
 * each visitor an identity on first load).
 *
 * @example
 * ```ts
 * import { Auth } from "@tether/http"
 *
 * // API clients
 * const bearer = Auth.layerBearer({ "token-of-alice": "alice", "token-of-bob": "bob" })
 *
 * // A web page: set the cookie on first load, verify it on every request
 * const cookie = Auth.layerSignedCookie({ secret: "a long random secret" })
 * const value = Auth.signCookieValue("a long random secret", Auth.CallerId.make("guest-42"))
 * ```
 *
 * @since 0.1.0
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import type { HttpServerRequest } from "@effect/platform"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Unauthorized } from "./RouteError.js"

/** A caller's identity: letters, digits, `_`, `-`, `.`, `@`, `:`; 1 to 128 characters. @since 0.1.0 */
export const CallerId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_.@:-]{1,128}$/),
  Schema.brand("@tether/http/CallerId")
)
/** @since 0.1.0 */
export type CallerId = typeof CallerId.Type

/** @since 0.1.0 */
export interface Service {
  /** The caller of `request`; fails with `Unauthorized` when it has no credentials or they do not verify. */
  readonly authenticate: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<CallerId, Unauthorized>
}

/** @since 0.1.0 */
export class Auth extends Context.Tag("@tether/http/Auth")<Auth, Service>() {}

/** Looks the caller of `request` up with the `Auth` in context. @since 0.1.0 */
export const authenticate = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<CallerId, Unauthorized, Auth> => Effect.flatMap(Auth, (auth) => auth.authenticate(request))

const missing = (what: string) => new Unauthorized({ message: `missing credentials: ${what}` })
const rejected = (what: string) => new Unauthorized({ message: `invalid credentials: ${what}` })

const sha256 = (value: string) => createHash("sha256").update(value, "utf8").digest("hex")

/**
 * Bearer tokens: `Authorization: Bearer <token>`, with a map from token to
 * caller id. Tokens are compared by their SHA-256, so lookups take the same
 * time whatever the token.
 *
 * @since 0.1.0
 */
export const layerBearer = (
  tokens: Readonly<Record<string, string>> | ReadonlyMap<string, string>
): Layer.Layer<Auth> =>
  Layer.sync(Auth, () => {
    const entries = tokens instanceof Map ? Array.from(tokens) : Object.entries(tokens)
    const callers = new Map(entries.map(([token, caller]) => [sha256(token), CallerId.make(caller)]))
    return {
      authenticate: (request) =>
        Effect.suspend(() => {
          const header = request.headers["authorization"]
          if (header === undefined) return Effect.fail(missing("no Authorization header"))
          const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
          if (match === null) return Effect.fail(rejected("the Authorization header is not a bearer token"))
          const caller = callers.get(sha256(match[1]!))
          return caller === undefined ? Effect.fail(rejected("unknown bearer token")) : Effect.succeed(caller)
        })
    }
  })

const secretOf = (secret: string | Redacted.Redacted<string>) =>
  Redacted.isRedacted(secret) ? Redacted.value(secret) : secret

const mac = (secret: string, payload: string) =>
  createHmac("sha256", secret).update(payload, "utf8").digest("base64url")

/**
 * The value of a signed cookie naming `callerId`: `<caller id>.<HMAC-SHA256>`.
 *
 * @since 0.1.0
 */
export const signCookieValue = (secret: string | Redacted.Redacted<string>, callerId: CallerId): string =>
  `${callerId}.${mac(secretOf(secret), callerId)}`

/**
 * The caller a signed cookie value names, if its signature verifies.
 *
 * @since 0.1.0
 */
export const verifyCookieValue = (
  secret: string | Redacted.Redacted<string>,
  value: string
): Option.Option<CallerId> => {
  const dot = value.lastIndexOf(".")
  if (dot <= 0) return Option.none()
  const caller = value.slice(0, dot)
  const given = Buffer.from(value.slice(dot + 1), "utf8")
  const expected = Buffer.from(mac(secretOf(secret), caller), "utf8")
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return Option.none()
  return Schema.decodeUnknownOption(CallerId)(caller)
}

/** The cookie name `layerSignedCookie` reads unless told otherwise. @since 0.1.0 */
export const defaultCookieName = "tether_caller"

/**
 * A cookie signed with HMAC-SHA256 (`signCookieValue`) names the caller. A
 * missing cookie, a forged or altered one, or one signed with another secret
 * is `Unauthorized`.
 *
 * @since 0.1.0
 */
export const layerSignedCookie = (options: {
  readonly secret: string | Redacted.Redacted<string>
  readonly cookieName?: string | undefined
}): Layer.Layer<Auth> =>
  Layer.succeed(Auth, {
    authenticate: (request) =>
      Effect.suspend(() => {
        const name = options.cookieName ?? defaultCookieName
        const value = request.cookies[name]
        if (value === undefined) return Effect.fail(missing(`no ${name} cookie`))
        return Option.match(verifyCookieValue(options.secret, value), {
          onNone: () => Effect.fail(rejected(`the ${name} cookie's signature does not verify`)),
          onSome: Effect.succeed
        })
      })
  })
