/**
 * The chat server under attack, over real HTTP: a second browser never sees the first one's orders; a client that
 * mints callers still has at most 4 runs going; cookies expire and survive a rotation of the secret; slow clients
 * are cut off.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { Auth } from "@tether/http"
import { SessionClient as Client } from "@tether/testing"
import * as Raw from "../../../packages/http/test/support/rawClient.js"
import * as Harness from "./support/harness.js"
import { ask } from "./support/scenarios.js"

/** A new visitor: loads the page and keeps the cookie it is given. */
const visit = (harness: Harness.Harness, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const page = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/", headers })
    expect(page.status).toBe(200)
    const setCookie = String(page.headers["set-cookie"])
    return { setCookie, headers: { cookie: setCookie.split(";")[0]! } }
  })

const ordersOf = (harness: Harness.Harness, headers: Record<string, string>) =>
  Effect.map(
    Client.requestJson({ port: harness.port, method: "GET", path: "/orders", headers }),
    (answer) => answer.json.orders as ReadonlyArray<{ readonly item: string; readonly owner: string }>
  )

describe("chat server security (SQLite)", () => {
  it.scopedLive("GET /orders lists the caller's own orders: a second browser sees nothing of the first's", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 5 })
      const first = yield* visit(harness)
      const second = yield* visit(harness)
      expect(first.headers.cookie).not.toBe(second.headers.cookie)
      const events = yield* ask(harness, "s-gift", "Order a secret gift for my wife", first.headers).pipe(
        Effect.flatMap((stream) => stream.ended),
        Effect.timeout("20 seconds")
      )
      expect(events.at(-1)?.event).toBe("RunCompleted")
      const caller = first.headers.cookie.slice(first.headers.cookie.indexOf("=") + 1).split(".")[0]
      // (The offline model orders what the words ask for: "secret gift".)
      expect(yield* ordersOf(harness, first.headers)).toMatchObject([{ item: "secret gift", owner: caller }])
      expect(yield* ordersOf(harness, second.headers)).toEqual([])
      // The second browser's own order is its own, and the first still sees only its one.
      yield* ask(harness, "s-kettle", "Order a kettle", second.headers).pipe(
        Effect.flatMap((stream) => stream.ended),
        Effect.timeout("20 seconds")
      )
      expect((yield* ordersOf(harness, second.headers)).map((o) => o.item)).toEqual(["kettle"])
      expect((yield* ordersOf(harness, first.headers)).map((o) => o.item)).toEqual(["secret gift"])
      expect(yield* harness.orders.list).toHaveLength(2)
    })
  )

  it.scopedLive("every session route of the first browser's session refuses the second browser (403)", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 5 })
      const first = yield* visit(harness)
      const second = yield* visit(harness)
      yield* ask(harness, "s-private", "Order a secret gift for my wife", first.headers).pipe(
        Effect.flatMap((stream) => stream.ended),
        Effect.timeout("20 seconds")
      )
      const routes = [
        { method: "GET", path: "/api/sessions/s-private" },
        { method: "GET", path: "/api/sessions/s-private/events" },
        { method: "POST", path: "/api/sessions/s-private/cancel" },
        { method: "POST", path: "/api/sessions/s-private/messages", body: JSON.stringify({ message: "and mine?" }) }
      ] as const
      for (const route of routes) {
        const answer = yield* Client.requestJson({ port: harness.port, ...route, headers: second.headers })
        expect(answer.status, `${route.method} ${route.path}`).toBe(403)
        expect(JSON.stringify(answer.json)).not.toMatch(/secret gift/)
        const own = yield* Client.requestJson({ port: harness.port, ...route, headers: first.headers })
        expect(own.status, `${route.method} ${route.path} by its owner`).toBe(200)
      }
    })
  )

  it.scopedLive("a client that mints 5 callers gets at most 4 runs going from its address (429 past them)", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({ answerWords: 2000 })
      const callers = yield* Effect.forEach(Array.from({ length: 5 }), () => visit(harness))
      const streams = yield* Effect.forEach(
        callers.flatMap((caller, i) => [0, 1].map((j) => ({ caller, sessionId: `mint-${i}-${j}` }))),
        ({ caller, sessionId }) => ask(harness, sessionId, "Order a lamp", caller.headers)
      )
      const started = streams.filter((stream) => stream.status === 200)
      const refused = streams.filter((stream) => stream.status === 429)
      expect(started).toHaveLength(4)
      expect(refused).toHaveLength(6)
      for (const stream of refused) {
        expect(JSON.parse(stream.text()).error).toMatchObject({
          _tag: "TooManyRuns",
          limit: 4,
          message: expect.stringMatching(/from one client address/)
        })
      }
      // Once a run ends, the address may start another.
      yield* started[0]!.destroy
      const next = yield* ask(harness, "mint-after", "Order a lamp", callers[4]!.headers).pipe(
        Effect.repeat({ until: (stream) => stream.status === 200, times: 40 }),
        Effect.timeout("10 seconds")
      )
      expect(next.status).toBe(200)
      yield* Effect.forEach([...started.slice(1), next], (stream) => stream.destroy, { discard: true })
    })
  )

  it.scopedLive("cookies carry an expiry; an expired one is refused and replaced by the page", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({}, undefined, { cookieMaxAge: "7 days" })
      const { headers, setCookie } = yield* visit(harness)
      expect(setCookie).toMatch(/; Max-Age=604800; /)
      expect((yield* Client.requestJson({ port: harness.port, method: "GET", path: "/orders", headers })).status).toBe(
        200
      )
      const expired = yield* Auth.signCookieValue(Harness.secret, Auth.CallerId.make("guest-old"), {
        maxAge: "1 millis"
      })
      const stale = { cookie: `${Auth.defaultCookieName}=${expired}` }
      const refused = yield* Client.requestJson({ port: harness.port, method: "GET", path: "/orders", headers: stale })
      expect(refused.status).toBe(401)
      const renewed = yield* visit(harness, stale)
      expect(renewed.headers.cookie).not.toContain("guest-old")
    })
  )

  it.scopedLive(
    "rotation: a cookie of the previous secret is accepted and the page re-issues it with the new one",
    () =>
      Effect.gen(function* () {
        const previous = "the-previous-chat-secret-of-32-bytes"
        const harness = yield* Harness.start({}, undefined, { previousSecrets: [Redacted.make(previous)] })
        const caller = Auth.CallerId.make("guest-rotated")
        const old = { cookie: `${Auth.defaultCookieName}=${yield* Auth.signCookieValue(previous, caller)}` }
        expect(
          (yield* Client.requestJson({ port: harness.port, method: "GET", path: "/orders", headers: old })).status
        ).toBe(200)
        const reissued = yield* visit(harness, old)
        const value = reissued.headers.cookie.slice(reissued.headers.cookie.indexOf("=") + 1)
        expect(yield* Auth.verifyCookieValue(Harness.secret, value)).toStrictEqual(Option.some(caller))
        expect(yield* Auth.verifyCookieValue(previous, value)).toStrictEqual(Option.none())
        // Another key's cookie is refused, rotation or not.
        const forged = yield* Auth.signCookieValue("some-attacker-secret-of-32-bytes!", caller)
        const refused = yield* Client.requestJson({
          port: harness.port,
          method: "GET",
          path: "/orders",
          headers: { cookie: `${Auth.defaultCookieName}=${forged}` }
        })
        expect(refused.status).toBe(401)
      })
  )

  it.scopedLive("slow clients are cut off: silent headers at the headers deadline, a trickling body with 408", () =>
    Effect.gen(function* () {
      const harness = yield* Harness.start({}, undefined, {
        server: { headersTimeout: "1 second", checkInterval: "200 millis" },
        limits: { bodyTimeout: "1 second" }
      })
      const { headers } = yield* visit(harness)
      const silent = yield* Effect.all(Array.from({ length: 5 }, () => Raw.connect(harness.port)))
      yield* Effect.forEach(silent, (client) => client.write("GET / HTTP/1.1\r\nHost: x\r\n"), { discard: true })
      const body = JSON.stringify({ message: "Order a lamp" })
      const trickling = yield* Effect.all(Array.from({ length: 10 }, () => Raw.connect(harness.port)))
      yield* Effect.forEach(
        trickling,
        (client, i) =>
          client
            .write(
              [
                `POST /api/sessions/slow-${i}/messages HTTP/1.1`,
                "Host: x",
                `Cookie: ${headers.cookie}`,
                "Content-Type: application/json",
                `Content-Length: ${body.length}`,
                "",
                ""
              ].join("\r\n")
            )
            .pipe(Effect.zipRight(Effect.forkScoped(client.trickle(body, "1 second")))),
        { discard: true }
      )
      // The page still loads for everyone else.
      yield* visit(harness)
      const silentEnds = yield* Effect.forEach(silent, (client) => client.closed).pipe(Effect.timeout("8 seconds"))
      const tricklingEnds = yield* Effect.forEach(trickling, (client) => client.closed).pipe(
        Effect.timeout("8 seconds")
      )
      for (const end of silentEnds) expect(end.received).toMatch(/^HTTP\/1\.1 408 /)
      for (const end of tricklingEnds) {
        expect(end.received).toMatch(/^HTTP\/1\.1 408 /)
        expect(end.received).toMatch(/"_tag":"RequestTimeout"/)
      }
      yield* Effect.logInfo(
        `chat server: silent headers cut off after ${silentEnds.map((e) => e.afterMillis.toFixed(0)).join(", ")} ms; ` +
          `trickling bodies after ${tricklingEnds.map((e) => e.afterMillis.toFixed(0)).join(", ")} ms`
      )
    })
  )
})
