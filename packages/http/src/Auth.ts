/**
 * Who is calling. Every session route asks `Auth` for the caller before it
 * looks at the session: a session records its owner when it first starts, and
 * only that caller may start, read, stream or stop it. A session id alone
 * grants nothing.
 *
 * Two layers come with the package: bearer tokens (`Authorization: Bearer ...`,
 * for APIs and tests) and an HMAC-signed cookie (for a web page that hands
 * each visitor an identity on first load), with an expiry, a secret of at least
 * 32 bytes, and previous secrets still accepted after a rotation.
 *
 * @example
 * ```ts
 * import { Auth } from "@tether/http"
 *
 * // API clients
 * const bearer = Auth.layerBearer({ "token-of-alice": "alice", "token-of-bob": "bob" })
 *
 * // A web page: set the cookie on first load, verify it on every request
 * const secret = "at least 32 bytes: openssl rand -base64 32"
 * const cookie = Auth.layerSignedCookie({ secret, previousSecrets: [] }) // Layer<Auth, SecretTooShort>
 * const value = Auth.signCookieValue(secret, Auth.CallerId.make("guest-42"), { maxAge: "7 days" }) // Effect<string, SecretTooShort>
 * ```
 *
 * @since 0.1.0
 */
import type { HttpServerRequest } from "@effect/platform"
import { Clock, Context, Duration, Effect, Encoding, Layer, Option, Redacted, Schema } from "effect"
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

/**
 * The caller a run acts for: `SessionRoutes` provides it to every run it starts, so that a tool can record who
 * asked (the owner of an order, say) without trusting anything the model says.
 *
 * @since 0.1.0
 */
export class CurrentCaller extends Context.Tag("@tether/http/Auth/CurrentCaller")<CurrentCaller, CallerId>() {}

/**
 * Looks the caller of `request` up with the `Auth` in context.
 *
 * @since 0.1.0
 */
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

/**
 * The shortest secret `layerSignedCookie` accepts, in bytes (UTF-8).
 *
 * @since 0.1.0
 */
export const minSecretBytes = 32

/**
 * A cookie secret shorter than `minSecretBytes`: with a short key, a visitor could find it from its own cookie and
 * forge any caller's. `layerSignedCookie` fails with it when it is built.
 *
 * @since 0.1.0
 */
export class SecretTooShort extends Schema.TaggedError<SecretTooShort>()("SecretTooShort", {
  bytes: Schema.Number,
  minBytes: Schema.Number,
  message: Schema.String
}) {}

/**
 * A secret, or a `Redacted` one.
 *
 * @since 0.1.0
 */
export type Secret = string | Redacted.Redacted<string>

const secretOf = (secret: Secret) => (Redacted.isRedacted(secret) ? Redacted.value(secret) : secret)

/**
 * Fails with `SecretTooShort` when `secret` has fewer than `minSecretBytes` bytes; its message says how to make one.
 *
 * @since 0.1.0
 */
export const checkSecret = (secret: Secret, what = "the cookie secret"): Effect.Effect<void, SecretTooShort> =>
  Effect.suspend(() => {
    const bytes = utf8.encode(secretOf(secret)).length
    return bytes >= minSecretBytes
      ? Effect.void
      : Effect.fail(
          new SecretTooShort({
            bytes,
            minBytes: minSecretBytes,
            message: `${what} has ${bytes} bytes; it needs at least ${minSecretBytes} (make one with: openssl rand -base64 32)`
          })
        )
  })

/** The HMAC-SHA256 key of a secret. */
const hmacKey = (secret: Secret): Effect.Effect<CryptoKey> =>
  Effect.promise(() =>
    crypto.subtle.importKey("raw", utf8.encode(secretOf(secret)), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify"
    ])
  )

/**
 * What the MAC covers: the caller and the expiry, after a label that no caller id can contain (a newline), so that a
 * MAC of another format or purpose never verifies as a cookie's.
 */
const signedText = (callerId: string, expiresAt: string) =>
  utf8.encode(`tether/caller-cookie/v2\n${callerId}\n${expiresAt}`)

/**
 * How long a signed cookie is valid unless told otherwise: 30 days.
 *
 * @since 0.1.0
 */
export const defaultCookieMaxAge: Duration.Duration = Duration.days(30)

const sign = (key: CryptoKey, callerId: string, maxAge: Duration.DurationInput): Effect.Effect<string> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const expiresAt = String(Math.floor((now + Duration.toMillis(maxAge)) / 1000))
    return Effect.promise(() => crypto.subtle.sign("HMAC", key, signedText(callerId, expiresAt))).pipe(
      Effect.map((mac) => `${callerId}.${expiresAt}.${Encoding.encodeBase64Url(new Uint8Array(mac))}`)
    )
  })

/**
 * The caller of a cookie value, if its MAC verifies with one of `keys` and it has not expired (Web Crypto's
 * `verify` compares in constant time).
 */
const verify = (keys: ReadonlyArray<CryptoKey>, value: string): Effect.Effect<Option.Option<CallerId>> => {
  const macDot = value.lastIndexOf(".")
  const expiryDot = macDot <= 0 ? -1 : value.lastIndexOf(".", macDot - 1)
  if (expiryDot <= 0) return Effect.succeedNone
  const caller = value.slice(0, expiryDot)
  const expiresAt = value.slice(expiryDot + 1, macDot)
  const encodedMac = value.slice(macDot + 1)
  if (!/^\d{1,12}$/.test(expiresAt)) return Effect.succeedNone
  const mac = Encoding.decodeBase64Url(encodedMac)
  if (mac._tag === "Left") return Effect.succeedNone
  const given = new Uint8Array(mac.right)
  const text = signedText(caller, expiresAt)
  return Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    if (Number(expiresAt) * 1000 <= now) return Option.none()
    for (const key of keys) {
      if (yield* Effect.promise(() => crypto.subtle.verify("HMAC", key, given, text))) {
        return Schema.decodeUnknownOption(CallerId)(caller)
      }
    }
    return Option.none()
  })
}

/**
 * The value of a signed cookie naming `callerId` until `maxAge` from now (default `defaultCookieMaxAge`):
 * `<caller id>.<expiry, Unix seconds>.<HMAC-SHA256 of both>`. Fails with `SecretTooShort` for a secret shorter than
 * `minSecretBytes`.
 *
 * @since 0.1.0
 */
export const signCookieValue = (
  secret: Secret,
  callerId: CallerId,
  options?: { readonly maxAge?: Duration.DurationInput | undefined }
): Effect.Effect<string, SecretTooShort> =>
  checkSecret(secret).pipe(
    Effect.zipRight(hmacKey(secret)),
    Effect.flatMap((key) => sign(key, callerId, options?.maxAge ?? defaultCookieMaxAge))
  )

/**
 * The caller a signed cookie value names, if its signature verifies with `secret` (or one of several secrets: the
 * current one and previous ones) and it has not expired. Fails with `SecretTooShort` for a secret shorter than
 * `minSecretBytes`.
 *
 * @since 0.1.0
 */
export const verifyCookieValue = (
  secret: Secret | ReadonlyArray<Secret>,
  value: string
): Effect.Effect<Option.Option<CallerId>, SecretTooShort> =>
  Effect.forEach(Array.isArray(secret) ? secret : [secret as Secret], (one) =>
    Effect.zipRight(checkSecret(one), hmacKey(one))
  ).pipe(Effect.flatMap((keys) => verify(keys, value)))

/**
 * The cookie name `layerSignedCookie` reads unless told otherwise.
 *
 * @since 0.1.0
 */
export const defaultCookieName = "tether_caller"

/** @since 0.1.0 */
export interface SignedCookieOptions {
  /** Signs new cookies and verifies them; at least `minSecretBytes` bytes. */
  readonly secret: Secret
  /**
   * Secrets rotated out: cookies they signed still verify (until they expire), so that changing `secret` does not
   * log every visitor out. Re-issue such cookies with the current secret (`signCookieValue`) when a visitor comes
   * back; drop a previous secret once every cookie it signed has expired (`maxAge` after the rotation).
   */
  readonly previousSecrets?: ReadonlyArray<Secret> | undefined
  readonly cookieName?: string | undefined
}

/**
 * A cookie signed with HMAC-SHA256 (`signCookieValue`) names the caller. A
 * missing cookie, a forged or altered one, an expired one, or one signed with a
 * secret other than `secret` and `previousSecrets` is `Unauthorized`. Building
 * the layer fails with `SecretTooShort` if any secret is shorter than
 * `minSecretBytes`.
 *
 * @since 0.1.0
 */
export const layerSignedCookie = (options: SignedCookieOptions): Layer.Layer<Auth, SecretTooShort> =>
  Layer.effect(
    Auth,
    Effect.gen(function* () {
      const previous = options.previousSecrets ?? []
      yield* checkSecret(options.secret)
      yield* Effect.forEach(previous, (secret, i) => checkSecret(secret, `previous cookie secret ${i + 1}`))
      const keys = yield* Effect.forEach([options.secret, ...previous], hmacKey)
      const name = options.cookieName ?? defaultCookieName
      return {
        authenticate: (request: HttpServerRequest.HttpServerRequest) =>
          Effect.suspend(() => {
            const value = request.cookies[name]
            if (value === undefined) return Effect.fail(missing(`no ${name} cookie`))
            return Effect.flatMap(
              verify(keys, value),
              Option.match({
                onNone: () => Effect.fail(rejected(`the ${name} cookie is expired or its signature does not verify`)),
                onSome: (caller) => Effect.succeed(caller)
              })
            )
          })
      }
    })
  )
