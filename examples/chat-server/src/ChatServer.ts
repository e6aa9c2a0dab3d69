/**
 * The chat server: the page at `/`, the session routes of `@tether/http` under
 * `/api`, and `GET /orders` (the caller's own). Each visitor gets a signed
 * cookie naming a fresh caller on first load, re-issued (with the current
 * secret and a new expiry) on every later load; the session routes check it on
 * every request. One client address may have at most 4 runs going, however
 * many callers it mints. Slow clients are cut off (`NodeServer` deadlines for
 * headers, `SessionRoutes` for bodies). Each run's start and end is one line of
 * the server's output (`RunLog`). On
 * shutdown, running runs are cancelled with `Shutdown` and their event streams
 * end with `RunCancelled` before the server closes, and one line sums up what
 * was cancelled; connections still open a few seconds later are closed, so the
 * process always exits.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import * as ChatServer from "./ChatServer.js"
 * import * as Model from "./Model.js"
 * import * as Storage from "./Storage.js"
 *
 * const main = ChatServer.layer({ port: 3000, secret: Redacted.make("32 bytes or more: openssl rand -base64 32") }).pipe(
 *   Layer.provide(Model.layerFromEnv),
 *   Layer.provide(Storage.layerFromEnv)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage } from "node:http"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Console, Duration, Effect, Layer, Option } from "effect"
import type { Redacted } from "effect"
import { RunRegistry } from "@tether/core"
import { Auth, GracefulShutdown, RouteError, SessionRoutes, SessionRuns } from "@tether/http"
import { NodeServer } from "@tether/node"
import * as Assistant from "./Assistant.js"
import { ModelInfo } from "./Model.js"
import * as Page from "./Page.js"
import * as RunLog from "./RunLog.js"
import { Orders } from "./Storage.js"

/** @since 0.1.0 */
export interface Options {
  readonly port: number
  /** Default: every interface. */
  readonly host?: string | undefined
  /** Signs the visitors' cookies: at least 32 bytes (the layer fails with `Auth.SecretTooShort` otherwise). */
  readonly secret: Redacted.Redacted<string>
  /** Secrets rotated out: their cookies are still accepted, and re-issued with `secret` when their visitor comes back. */
  readonly previousSecrets?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  /** How long a visitor's cookie is valid after its last visit to the page. Default 30 days. */
  readonly cookieMaxAge?: Duration.DurationInput | undefined
  /** Deadlines for slow clients (headers, whole request, keep-alive). Default `NodeServer.defaults`. */
  readonly server?: NodeServer.Options | undefined
  readonly assistant?: Assistant.Options | undefined
  readonly limits?: Partial<SessionRoutes.Limits> | undefined
  /** How many runs the process takes at once, and how many starts may wait. Default `SessionRuns.defaults`. */
  readonly runs?: SessionRuns.Options | undefined
  /**
   * The listen queue of the socket (Node's `backlog`): connections the kernel holds while the server is busy, before
   * it drops new ones. Default `NodeServer.defaults.backlog` (4096; the kernel caps it at `net.core.somaxconn`); Node's
   * own is 511.
   */
  readonly backlog?: number | undefined
  /** How long the shutdown waits for runs to stop. Default 10 seconds. */
  readonly shutdownDeadline?: Duration.DurationInput | undefined
  /** Connections still open this long after the drain are closed. Default 3 seconds. */
  readonly forceCloseAfter?: Duration.DurationInput | undefined
  /**
   * The name of this replica, in cluster mode: every response names it in the `x-tether-replica` header, and the page
   * shows which replica served each request. Default: none (one process).
   */
  readonly replica?: string | undefined
}

/**
 * The page. A visitor without a valid cookie gets a new caller id; a known one gets its cookie again, signed with the
 * current secret (a cookie of a previous secret moves to the current one) and valid for `maxAge` from now.
 */
const page = (secret: Redacted.Redacted<string>, maxAge: Duration.DurationInput, replica: string | undefined) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const known = yield* Effect.option(Auth.authenticate(request))
    const model = yield* ModelInfo
    const orders = yield* Orders
    const html = HttpServerResponse.text(
      Page.render({ model: model.label, isOffline: model.mode === "offline", storage: orders.label, replica }),
      { contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-store" } }
    )
    const caller = Option.getOrElse(known, () => Auth.CallerId.make(`guest-${randomUUID()}`))
    // The secret was checked when the server started (`Auth.layerSignedCookie`): it cannot be too short here.
    const value = yield* Effect.orDie(Auth.signCookieValue(secret, caller, { maxAge }))
    return HttpServerResponse.unsafeSetCookie(html, Auth.defaultCookieName, value, {
      httpOnly: true,
      sameSite: "strict",
      path: "/",
      maxAge
    })
  })

/** The committed orders of the caller (a valid cookie): never anyone else's. */
const orders = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const caller = yield* Auth.authenticate(request)
  const store = yield* Orders
  return HttpServerResponse.unsafeJson({ orders: yield* store.ownedBy(caller) })
}).pipe(Effect.catchTag("Unauthorized", (error) => Effect.succeed(RouteError.toResponse(error))))

const info = Effect.map(Effect.all([ModelInfo, Orders]), ([model, store]) =>
  HttpServerResponse.unsafeJson({ model, storage: store.label })
)

/** The app's routes. @since 0.1.0 */
export const router = (options: Omit<Options, "port" | "host">) =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/", page(options.secret, options.cookieMaxAge ?? Auth.defaultCookieMaxAge, options.replica)),
    HttpRouter.get("/orders", orders),
    HttpRouter.get("/info", info),
    HttpRouter.mount(
      "/api",
      SessionRoutes.router(Assistant.make(options.assistant), {
        limits: { maxRunningPerCaller: 2, maxRunningPerAddress: 4, ...options.limits }
      })
    )
  )

/**
 * The server on `options.port`, with the runs of this process (`SessionRuns.layer` over a `RunRegistry` that logs
 * each run, `RunLog`); it needs the model (`LanguageModel`, `ModelInfo`) and the storage (`StagedWrites`, `Orders`,
 * `SessionStore`), which outlive it.
 *
 * @since 0.1.0
 */
export const layer = (options: Options) =>
  layerWithRuns(
    options,
    SessionRuns.layer(options.runs).pipe(Layer.provideMerge(RunLog.layer.pipe(Layer.provide(RunRegistry.layer()))))
  )

/**
 * The server on `options.port` over the given runs: `SessionRuns` and the `RunRegistry` of this process's runs, which
 * the shutdown drains (the cluster's, say: `Cluster.sessionRuns`). Besides, it needs what `layer` needs.
 *
 * @since 0.1.0
 */
export const layerWithRuns = <E, R>(
  options: Options,
  runs: Layer.Layer<SessionRuns.SessionRuns | RunRegistry.RunRegistry, E, R>
) => {
  // A start past the cap of live runs is answered before the router (`SessionRoutes.refuseWhenFull`), once the runs are
  // there to ask.
  let refuse: (request: IncomingMessage) => NodeServer.Refusal | undefined = () => undefined
  const server = NodeServer.make({ ...options.server, refuse: (request) => refuse(request) })
  const refuseWhenFull = Layer.effectDiscard(
    Effect.map(SessionRuns.SessionRuns, (runs) => {
      refuse = SessionRoutes.refuseWhenFull(runs, { prefix: "/api" })
    })
  )
  const replica = options.replica
  if (replica !== undefined) {
    // Before the app's own listener: the header is on every response, the app's errors and 404s included.
    server.prependListener("request", (_request, response) => response.setHeader(Page.replicaHeader, replica))
  }
  // Released after the drain, just before the server closes: a timer (not a fiber, which would be
  // interrupted with this scope) closes what is still open after a grace period; unref'd, it never
  // keeps the process alive.
  const forceClose = Layer.scopedDiscard(
    Effect.addFinalizer(() =>
      Effect.sync(() => {
        setTimeout(
          () => server.closeAllConnections(),
          Duration.toMillis(Duration.decode(options.forceCloseAfter ?? "3 seconds"))
        ).unref()
      })
    )
  )
  const announce = Layer.effectDiscard(
    Effect.gen(function* () {
      const address = (yield* HttpServer.HttpServer).address
      const model = yield* ModelInfo
      const port = address._tag === "TcpAddress" ? address.port : 0
      const name = replica === undefined ? "" : ` (${replica})`
      yield* Console.log(`Tether chat server${name} on http://localhost:${port} (model: ${model.label})`)
    })
  )
  const services = Layer.mergeAll(
    runs,
    Auth.layerSignedCookie({ secret: options.secret, previousSecrets: options.previousSecrets })
  )
  const serve = Layer.merge(
    GracefulShutdown.serve(router(options), { deadline: options.shutdownDeadline ?? "10 seconds" }),
    refuseWhenFull
  ).pipe(Layer.provide(services))
  return Layer.mergeAll(serve, announce).pipe(
    Layer.provide(forceClose),
    Layer.provideMerge(
      NodeHttpServer.layer(() => server, {
        port: options.port,
        backlog: options.backlog ?? NodeServer.defaults.backlog,
        ...(options.host === undefined ? {} : { host: options.host })
      })
    )
  )
}
