/**
 * The server under test, assembled in-process as an application would: the
 * session routes of `@tether/http` on `NodeHttpServer` (127.0.0.1, port 0)
 * with bearer tokens, the real `AnthropicModel` against `FakeAnthropic` on
 * loopback, and `SqlStagedWrites` on a SQLite file. The model goes through a
 * delegate so each round can use a fresh fake (whose request records would
 * otherwise count as growth of the heap).
 *
 * Two mounts share the registry and the store: `/api`, and `/tight`, whose
 * runs get a token budget too small for them.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Server from "./Server.js"
 * import * as Tools from "./Tools.js"
 *
 * const program = Effect.gen(function* () {
 *   const server = yield* Server.start({ agent: Tools.make(Tools.makeObservations()).agent, filename: "/tmp/soak.db" })
 *   // requests to http://127.0.0.1:${server.port}/api/sessions/...
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import type { Agent } from "@tether/core"
import { LanguageModel, RunRegistry, SessionStore } from "@tether/core"
import { Auth, GracefulShutdown, SessionRoutes, SessionRuns } from "@tether/http"
import { SqlStagedWrites } from "@tether/sql"
import { Context, Effect, Layer } from "effect"
import type { Duration, Scope } from "effect"
import { callerCount } from "./Plan.js"

/** The token budget of runs started under `/tight`. @since 0.1.0 */
export const tightBudget = 600

/** The bearer token of caller `index`. @since 0.1.0 */
export const tokenOf = (index: number) => `soak-token-${index}`

/** @since 0.1.0 */
export interface Server {
  readonly port: number
  readonly registry: RunRegistry.Service
  readonly records: SqlStagedWrites.CommittedRecords
  readonly store: SessionStore.Service
  /** Sets the model the routes use from now on. */
  readonly useModel: (model: LanguageModel.Service) => Effect.Effect<void>
}

/** Starts the server for the lifetime of the scope. @since 0.1.0 */
export const start = (options: {
  readonly agent: Agent.Agent<never>
  readonly filename: string
  /** The registry's `retainEnded` (its default when not given). */
  readonly retainEnded?: Duration.DurationInput | undefined
  /** The in-memory session store's `retainIdle` (its default, forever, when not given). */
  readonly retainIdle?: Duration.DurationInput | undefined
}): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.gen(function* () {
    const current: { model: LanguageModel.Service | undefined } = { model: undefined }
    const delegate = Layer.succeed(LanguageModel.LanguageModel, {
      runTurn: (request, onEvents) =>
        Effect.suspend(() =>
          current.model === undefined ? Effect.dieMessage("no model set") : current.model.runTurn(request, onEvents)
        )
    })
    // Every soak client connects from 127.0.0.1: the per-address limit must not throttle them.
    const limits = { maxRunningPerCaller: 1000, maxRunningPerAddress: 1000 }
    const app = HttpRouter.empty.pipe(
      HttpRouter.mount("/api", SessionRoutes.router(options.agent, { limits, timeout: "20 seconds" })),
      HttpRouter.mount(
        "/tight",
        SessionRoutes.router(options.agent, { limits, timeout: "20 seconds", tokenBudget: tightBudget })
      )
    )
    const tokens = Object.fromEntries(Array.from({ length: callerCount }, (_, i) => [tokenOf(i), `caller-${i}`]))
    const services = Layer.mergeAll(
      // The soak is not about admission: a cap of live runs it never reaches, whatever `--concurrency` says.
      SessionRuns.layer({ maxLiveRuns: 100_000 }).pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            RunRegistry.layer({ retainEnded: options.retainEnded }),
            SessionStore.layerMemory({ retainIdle: options.retainIdle })
          )
        )
      ),
      Auth.layerBearer(tokens),
      delegate,
      SqlStagedWrites.layerSqlite({ filename: options.filename })
    )
    const server = GracefulShutdown.serve(app, { deadline: "10 seconds" }).pipe(
      Layer.provideMerge(services),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
    const context = yield* Layer.build(server).pipe(Effect.orDie)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
    return {
      port: address.port,
      registry: Context.get(context, RunRegistry.RunRegistry),
      records: Context.get(context, SqlStagedWrites.Records),
      store: Context.get(context, SessionStore.SessionStore),
      useModel: (model) => Effect.sync(() => void (current.model = model))
    }
  })
