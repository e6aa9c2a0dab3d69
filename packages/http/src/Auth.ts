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
 * const value = Auth.signCookieValue("a long random secret", Auth.CallerId.make("guest-42")) // Effect<string>
 * ```
 *
 * @since 0.1.0
 */
import type { HttpServerRequest } from "@effect/platform"
import { Context, Effect, Encoding, Layer, Option, Redacted, Schema } from "effect"
import { SessionStore } from "@tether/core"
import { Unauthorized } from "./RouteError.js"

/**
 * A caller's identity: letters, digits, `_`, `-`, `.`, `@`, `:`; 1 to 128 characters. (The owner of a session in
 * `@tether/core`'s `SessionStore`, which defines it.)
 *
 * @since 0.1.0
 */
export const CallerId = SessionStore.CallerId
/** @since 0.1.0 */
export type CallerId = SessionStore.CallerId

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

// Web Crypto (`globalThis.crypto.subtle`): the same on Node, Bun, Deno and workerd.
const utf8 = new TextEncoder()

const sha256 = (value: string): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.digest("SHA-256", utf8.encode(value))).pipe(
    Effect.map((digest) => Encoding.encodeHex(new Uint8Array(digest)))
  )

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
  Layer.effect(
    Auth,
    Effect.gen(function* () {
      const entries = tokens instanceof Map ? Array.from(tokens) : Object.entries(tokens)
      const callers = new Map(
        yield* Effect.forEach(entries, ([token, caller]) =>
          Effect.map(sha256(token), (digest) => [digest, CallerId.make(caller)] as const)
        )
      )
      return {
        authenticate: (request) =>
          Effect.suspend(() => {
            const header = request.headers["authorization"]
            if (header === undefined) return Effect.fail(missing("no Authorization header"))
            const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
            if (match === null) return Effect.fail(rejected("the Authorization header is not a bearer token"))
            return Effect.flatMap(sha256(match[1]!), (digest) => {
              const caller = callers.get(digest)
              return caller === undefined ? Effect.fail(rejected("unknown bearer token")) : Effect.succeed(caller)
            })
          })
      }
    })
  )

const secretOf = (secret: string | Redacted.Redacted<string>) =>
  Redacted.isRedacted(secret) ? Redacted.value(secret) : secret

/** The HMAC-SHA256 key of a secret. */
const hmacKey = (secret: string | Redacted.Redacted<string>): Effect.Effect<CryptoKey> =>
  Effect.promise(() =>
    crypto.subtle.importKey("raw", utf8.encode(secretOf(secret)), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify"
    ])
  )

const sign = (key: CryptoKey, callerId: string): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.sign("HMAC", key, utf8.encode(callerId))).pipe(
    Effect.map((mac) => `${callerId}.${Encoding.encodeBase64Url(new Uint8Array(mac))}`)
  )

/** The caller of a cookie value, if its MAC verifies (Web Crypto's `verify` compares in constant time). */
const verify = (key: CryptoKey, value: string): Effect.Effect<Option.Option<CallerId>> => {
  const dot = value.lastIndexOf(".")
  if (dot <= 0) return Effect.succeedNone
  const caller = value.slice(0, dot)
  const mac = Encoding.decodeBase64Url(value.slice(dot + 1))
  if (mac._tag === "Left") return Effect.succeedNone
  const given = new Uint8Array(mac.right)
  return Effect.promise(() => crypto.subtle.verify("HMAC", key, given, utf8.encode(caller))).pipe(
    Effect.map((isValid) => (isValid ? Schema.decodeUnknownOption(CallerId)(caller) : Option.none()))
  )
}

/**
 * The value of a signed cookie naming `callerId`: `<caller id>.<HMAC-SHA256>`.
 *
 * @since 0.1.0
 */
export const signCookieValue = (
  secret: string | Redacted.Redacted<string>,
  callerId: CallerId
): Effect.Effect<string> => Effect.flatMap(hmacKey(secret), (key) => sign(key, callerId))

/**
 * The caller a signed cookie value names, if its signature verifies.
 *
 * @since 0.1.0
 */
export const verifyCookieValue = (
  secret: string | Redacted.Redacted<string>,
  value: string
): Effect.Effect<Option.Option<CallerId>> => Effect.flatMap(hmacKey(secret), (key) => verify(key, value))

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
  Layer.effect(
    Auth,
    Effect.map(hmacKey(options.secret), (key) => ({
      authenticate: (request: HttpServerRequest.HttpServerRequest) =>
        Effect.suspend(() => {
          const name = options.cookieName ?? defaultCookieName
          const value = request.cookies[name]
          if (value === undefined) return Effect.fail(missing(`no ${name} cookie`))
          return Effect.flatMap(
            verify(key, value),
            Option.match({
              onNone: () => Effect.fail(rejected(`the ${name} cookie's signature does not verify`)),
              onSome: (caller) => Effect.succeed(caller)
            })
          )
        })
    }))
  )
