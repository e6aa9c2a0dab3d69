import { HttpServerRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Encoding, Exit, Layer, Option, Redacted, TestClock } from "effect"
import { Auth } from "@tether/http"

const requestWith = (headers: Record<string, string>) =>
  HttpServerRequest.fromWeb(new Request("http://localhost/api/sessions/s-1", { headers }))

const callerOf = (headers: Record<string, string>) =>
  Auth.authenticate(requestWith(headers)).pipe(
    Effect.map((caller) => caller as string),
    Effect.mapError((error) => error._tag)
  )

describe("Auth", () => {
  describe("layerBearer", () => {
    const layer = Auth.layerBearer(new Map([["token-alice", "alice"]]))

    it.effect("names the caller of a known token", () =>
      Effect.gen(function* () {
        expect(yield* callerOf({ authorization: "Bearer token-alice" })).toBe("alice")
        expect(yield* callerOf({ authorization: "bearer   token-alice " })).toBe("alice")
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses missing, unknown and non-bearer credentials with Unauthorized", () =>
      Effect.gen(function* () {
        for (const headers of [
          {},
          { authorization: "Bearer token-bob" },
          { authorization: "Basic dG9rZW4tYWxpY2U=" }
        ]) {
          const exit = yield* Effect.exit(callerOf(headers))
          expect(exit).toStrictEqual(Exit.fail("Unauthorized"))
        }
      }).pipe(Effect.provide(layer))
    )
  })

  describe("layerSignedCookie", () => {
    const secret = "test-secret-of-enough-length-32-bytes"
    const layer = Auth.layerSignedCookie({ secret })
    const cookie = (value: string) => ({ cookie: `${Auth.defaultCookieName}=${value}` })

    it.effect("names the caller of a cookie it signed", () =>
      Effect.gen(function* () {
        const value = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"))
        expect(yield* callerOf(cookie(value))).toBe("guest-1")
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "refuses a missing cookie, an altered caller or expiry, a forged signature and another secret's cookie",
      () =>
        Effect.gen(function* () {
          const value = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"))
          const [, expiresAt, signature] = value.split(".") as [string, string, string]
          const attempts = [
            {},
            cookie(`guest-2.${expiresAt}.${signature}`),
            cookie(`guest-1.${Number(expiresAt) + 86400}.${signature}`),
            cookie(`guest-1.${expiresAt}.${"A".repeat(signature.length)}`),
            cookie(`guest-1.${signature}`),
            cookie("guest-1"),
            cookie(yield* Auth.signCookieValue("another-secret-of-enough-length-32", Auth.CallerId.make("guest-1")))
          ]
          for (const headers of attempts) {
            expect(yield* Effect.exit(callerOf(headers))).toStrictEqual(Exit.fail("Unauthorized"))
          }
        }).pipe(Effect.provide(layer))
    )

    /** A cookie value as `signCookieValue` makes it, with any key, for forging. */
    const forge = (key: string, text: string) =>
      Effect.promise(async () => {
        const bytes = new TextEncoder().encode(key)
        // Web Crypto refuses an empty HMAC key; HMAC pads keys with zeros, so one zero byte is the same key.
        const raw = bytes.length === 0 ? new Uint8Array(1) : bytes
        const hmac = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
        const mac = await crypto.subtle.sign("HMAC", hmac, new TextEncoder().encode(text))
        return Encoding.encodeBase64Url(new Uint8Array(mac))
      })

    it.effect('a cookie forged with a weak key ("", "a") is refused, and no cookie can be signed with one', () =>
      Effect.gen(function* () {
        const expiresAt = "9999999999"
        for (const weak of ["", "a"]) {
          const mac = yield* forge(weak, `tether/caller-cookie/v2\nguest-1\n${expiresAt}`)
          expect(yield* Effect.exit(callerOf(cookie(`guest-1.${expiresAt}.${mac}`)))).toStrictEqual(
            Exit.fail("Unauthorized")
          )
          const signed = yield* Effect.exit(Auth.signCookieValue(weak, Auth.CallerId.make("guest-1")))
          expect(Exit.isFailure(signed) && Cause.failureOption(signed.cause)).toMatchObject(
            Option.some({ _tag: "SecretTooShort", bytes: weak.length })
          )
        }
      }).pipe(Effect.provide(layer))
    )

    it.effect("a cookie in the format without an expiry (<caller>.<HMAC of the caller>) is refused", () =>
      Effect.gen(function* () {
        for (const caller of ["guest-1", "guest.99999999999"]) {
          const mac = yield* forge(secret, caller)
          const old = `${caller}.${mac}`
          expect(yield* Effect.exit(callerOf(cookie(old)))).toStrictEqual(Exit.fail("Unauthorized"))
        }
      }).pipe(Effect.provide(layer))
    )

    it.effect("a cookie is valid until its max age, then Unauthorized", () =>
      Effect.gen(function* () {
        const value = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"), { maxAge: "1 hour" })
        yield* TestClock.adjust("59 minutes")
        expect(yield* callerOf(cookie(value))).toBe("guest-1")
        yield* TestClock.adjust("1 minute")
        expect(yield* Effect.exit(callerOf(cookie(value)))).toStrictEqual(Exit.fail("Unauthorized"))
        const lasting = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"))
        yield* TestClock.adjust(Duration.millis(Duration.toMillis(Auth.defaultCookieMaxAge) - 1000))
        expect(yield* callerOf(cookie(lasting))).toBe("guest-1")
        yield* TestClock.adjust("1 second")
        expect(yield* Effect.exit(callerOf(cookie(lasting)))).toStrictEqual(Exit.fail("Unauthorized"))
      }).pipe(Effect.provide(layer))
    )

    it.effect("rotation: a cookie signed with a previous secret is accepted, one signed with neither is not", () =>
      Effect.gen(function* () {
        const previous = "the-previous-secret-32-bytes-long!"
        const rotated = Auth.layerSignedCookie({ secret, previousSecrets: [previous] })
        const old = yield* Auth.signCookieValue(previous, Auth.CallerId.make("guest-1"))
        const current = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-2"))
        const other = yield* Auth.signCookieValue("some-other-secret-32-bytes-long!!!", Auth.CallerId.make("guest-3"))
        expect(yield* Effect.provide(callerOf(cookie(old)), rotated)).toBe("guest-1")
        expect(yield* Effect.provide(callerOf(cookie(current)), rotated)).toBe("guest-2")
        expect(yield* Effect.exit(Effect.provide(callerOf(cookie(other)), rotated))).toStrictEqual(
          Exit.fail("Unauthorized")
        )
        // Once the previous secret is dropped, its cookies are refused.
        expect(yield* Effect.exit(Effect.provide(callerOf(cookie(old)), layer))).toStrictEqual(
          Exit.fail("Unauthorized")
        )
        expect(yield* Auth.verifyCookieValue([secret, previous], old)).toStrictEqual(
          Option.some(Auth.CallerId.make("guest-1"))
        )
      })
    )

    it.effect("refuses to build with a secret (or a previous one) shorter than 32 bytes, saying how to make one", () =>
      Effect.gen(function* () {
        for (const options of [
          { secret: "" },
          { secret: "a" },
          { secret: "x".repeat(31) },
          { secret: Redacted.make("é".repeat(15)) },
          { secret, previousSecrets: ["short"] }
        ]) {
          const exit = yield* Effect.exit(Layer.build(Auth.layerSignedCookie(options)).pipe(Effect.scoped))
          expect(exit._tag).toBe("Failure")
          const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          expect(Option.getOrThrow(error)).toBeInstanceOf(Auth.SecretTooShort)
          expect(Option.getOrThrow(error).message).toMatch(
            /needs at least 32 \(make one with: openssl rand -base64 32\)$/
          )
        }
        for (const secret of ["x".repeat(32), "é".repeat(16)]) {
          const exit = yield* Effect.exit(Layer.build(Auth.layerSignedCookie({ secret })).pipe(Effect.scoped))
          expect(exit._tag).toBe("Success")
        }
      })
    )

    it.effect("verifyCookieValue round-trips signCookieValue", () =>
      Effect.gen(function* () {
        const caller = Auth.CallerId.make("user:42@example")
        const value = yield* Auth.signCookieValue(secret, caller)
        expect(yield* Auth.verifyCookieValue(secret, value)).toStrictEqual(Option.some(caller))
      })
    )
  })
})
