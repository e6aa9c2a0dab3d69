/**
 * The chat server as the tests run it: on 127.0.0.1 and a free port, with the
 * offline model (the real `AnthropicModel` against `FakeAnthropic` over HTTP)
 * and SQLite in a fresh temporary file, or the storage a test gives.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { HttpServer } from "@effect/platform"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SessionStore } from "@tether/core"
import { Auth } from "@tether/http"
import { FakeAnthropic } from "@tether/testing"
import * as ChatServer from "../../src/ChatServer.js"
import * as Model from "../../src/Model.js"
import type * as OfflineScript from "../../src/OfflineScript.js"
import * as Storage from "../../src/Storage.js"
import { SessionClient as Client } from "@tether/testing"

export const secret = "chat-server-test-secret-of-enough-bytes"

/** A cookie naming `caller`, as the page would have set it. */
export const cookieFor = (caller: string) =>
  Effect.map(Auth.signCookieValue(secret, Auth.CallerId.make(caller)), (value) => ({
    cookie: `${Auth.defaultCookieName}=${value}`
  }))

export interface Harness {
  readonly port: number
  readonly url: string
  readonly fake: FakeAnthropic.Service
  readonly orders: Storage.Service
  readonly sessions: SessionStore.Service
  readonly shutdown: Effect.Effect<void>
}

export const start = (
  offline: OfflineScript.Options = {},
  storage?: Layer.Layer<Storage.Provided, Storage.StorageError>,
  options: Partial<ChatServer.Options> = {}
): Effect.Effect<Harness, never, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-chat-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    const server = ChatServer.layer({
      port: 0,
      host: "127.0.0.1",
      secret: Redacted.make(secret),
      assistant: { researchStepMillis: 40 },
      forceCloseAfter: "1 second",
      ...options
    }).pipe(
      Layer.provideMerge(Model.layerOffline({ interval: 15, ...offline })),
      Layer.provideMerge(storage ?? Storage.layerSqlite(path.join(dir, "chat.db")))
    )
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(server, scope).pipe(Effect.orDie)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      port,
      url: `http://127.0.0.1:${port}`,
      fake: Context.get(context, FakeAnthropic.FakeAnthropic),
      orders: Context.get(context, Storage.Orders),
      sessions: Context.get(context, SessionStore.SessionStore),
      shutdown: Scope.close(scope, Exit.void)
    }
  })

/** Polls `GET /api/sessions/:id` until `predicate` holds (every 25 ms, at most 10 s). */
export const waitForStatus = (
  harness: Harness,
  headers: Record<string, string>,
  sessionId: string,
  predicate: (status: any) => boolean
) =>
  Client.requestJson({ port: harness.port, method: "GET", path: `/api/sessions/${sessionId}`, headers }).pipe(
    Effect.map((answer) => answer.json),
    Effect.delay("25 millis"),
    Effect.repeat({ until: predicate }),
    Effect.timeout("10 seconds"),
    Effect.orDie
  )
