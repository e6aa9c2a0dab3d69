import { HttpServerRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
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
    const secret = "test-secret-of-enough-length"
    const layer = Auth.layerSignedCookie({ secret })
    const cookie = (value: string) => ({ cookie: `${Auth.defaultCookieName}=${value}` })

    it.effect("names the caller of a cookie it signed", () =>
      Effect.gen(function* () {
        const value = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"))
        expect(yield* callerOf(cookie(value))).toBe("guest-1")
      }).pipe(Effect.provide(layer))
    )

    it.effect("refuses a missing cookie, an altered caller, a forged signature and another secret's cookie", () =>
      Effect.gen(function* () {
        const value = yield* Auth.signCookieValue(secret, Auth.CallerId.make("guest-1"))
        const signature = value.slice(value.lastIndexOf(".") + 1)
        const attempts = [
          {},
          cookie(`guest-2.${signature}`),
          cookie(`guest-1.${"A".repeat(signature.length)}`),
          cookie("guest-1"),
          cookie(yield* Auth.signCookieValue("another-secret", Auth.CallerId.make("guest-1")))
        ]
        for (const headers of attempts) {
          expect(yield* Effect.exit(callerOf(headers))).toStrictEqual(Exit.fail("Unauthorized"))
        }
      }).pipe(Effect.provide(layer))
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
