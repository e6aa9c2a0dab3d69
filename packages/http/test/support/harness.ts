/**
 * A real server for the route tests: the session routes under `/api`, on
 * 127.0.0.1 and a free port, with a `ScriptedModel`, in-memory staged writes
 * and bearer tokens for two callers. The layer is built in its own scope, so a
 * test can close it (shutdown) while requests are open.
 */
import { createServer } from "node:http"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import type { Duration } from "effect"
import { Agent, AgentRun, RunRegistry, SessionStore, StagedWrites, Tool } from "@tether/core"
import { Auth, GracefulShutdown, SessionRoutes, SessionRuns } from "@tether/http"
import { ScriptedModel, SessionClient } from "@tether/testing"

export const tokens = { "token-alice": "alice", "token-bob": "bob" } as const
export const alice = { authorization: "Bearer token-alice" }
export const bob = { authorization: "Bearer token-bob" }

/** A tool that stages an order, then works for `work`. */
export const placeOrder = (work: Duration.DurationInput = "10 millis") =>
  Tool.make({
    name: "place_order",
    description: "Places an order",
    input: Schema.Struct({ id: Schema.String, total: Schema.Number }),
    output: Schema.String,
    handler: (order) =>
      Effect.gen(function* () {
        yield* AgentRun.stage(StagedWrites.upsert("orders", order.id, order))
        yield* Effect.sleep(work)
        return `order ${order.id} placed`
      })
  })

export const shop = Agent.make({ name: "shop", tools: [placeOrder()] })

/**
 * For every session alike: a user message gets a `place_order` call; the tool's
 * result gets `chunks` pieces of text, `delay` apart.
 */
export const orderThenSlowText =
  (chunks: number, delay: Duration.DurationInput): ScriptedModel.Script =>
  (request) => {
    const last = request.messages[request.messages.length - 1]
    return last?.content.some((block) => block.type === "tool_result")
      ? ScriptedModel.text("x".repeat(chunks * 4), { chunks, delay })
      : [ScriptedModel.toolUse("place_order", { id: "o-1", total: 3 })]
  }

export interface Harness {
  readonly port: number
  readonly registry: RunRegistry.Service
  readonly runs: SessionRuns.Service
  readonly store: SessionStore.Service
  readonly model: ScriptedModel.Recorder
  readonly committed: Effect.Effect<StagedWrites.Snapshot>
  /** Closes the server's layer (what SIGTERM does under `NodeRuntime.runMain`). */
  readonly shutdown: Effect.Effect<void>
}

export const start = (options: {
  readonly script: ScriptedModel.Script
  readonly agent?: Agent.Agent<Auth.CurrentCaller> | undefined
  readonly routes?: SessionRoutes.Options | undefined
  /** How long the registry keeps an ended run (its default when not given). */
  readonly retainEnded?: Duration.DurationInput | undefined
  /** How long the session store keeps an idle session (its default when not given). */
  readonly retainIdle?: Duration.DurationInput | undefined
  /** The session store; default the in-memory one (with `retainIdle`). */
  readonly sessionStore?: Layer.Layer<SessionStore.SessionStore> | undefined
  /** Staged writes in place of the in-memory ones (whose `committed` stays empty then). */
  readonly stagedWrites?: Layer.Layer<StagedWrites.StagedWrites> | undefined
  /** The capacity of the runs (`SessionRuns.layer`'s defaults when not given). */
  readonly runs?: SessionRuns.Options | undefined
  /** Wraps the session runs the routes see (to watch what the routes call). */
  readonly wrapRuns?: ((runs: SessionRuns.Service) => SessionRuns.Service) | undefined
}): Effect.Effect<Harness, never, Scope.Scope> =>
  Effect.gen(function* () {
    const app = HttpRouter.empty.pipe(
      HttpRouter.mount("/api", SessionRoutes.router(options.agent ?? shop, options.routes))
    )
    const services = Layer.mergeAll(
      (options.wrapRuns === undefined
        ? SessionRuns.layer(options.runs)
        : Layer.scoped(SessionRuns.SessionRuns, Effect.map(SessionRuns.make(options.runs), options.wrapRuns))
      ).pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            RunRegistry.layer({ retainEnded: options.retainEnded }),
            options.sessionStore ?? SessionStore.layerMemory({ retainIdle: options.retainIdle })
          )
        )
      ),
      Auth.layerBearer(tokens),
      ScriptedModel.layer(options.script),
      StagedWrites.layerMemory,
      options.stagedWrites ?? Layer.empty
    )
    const server = GracefulShutdown.serve(app, { deadline: "5 seconds" }).pipe(
      Layer.provideMerge(services),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
    )
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(server, scope).pipe(Effect.orDie)
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
    return {
      port: address.port,
      registry: Context.get(context, RunRegistry.RunRegistry),
      runs: Context.get(context, SessionRuns.SessionRuns),
      store: Context.get(context, SessionStore.SessionStore),
      model: Context.get(context, ScriptedModel.ScriptedModel),
      committed: Context.get(context, StagedWrites.MemoryStore).snapshot,
      shutdown: Scope.close(scope, Exit.void)
    }
  })

/** The outcome of a session's latest run, waiting at most 10 seconds. */
export const outcomeOf = (harness: Harness, sessionId: string) =>
  Effect.gen(function* () {
    const run = yield* harness.registry.get(sessionId).pipe(Effect.flatten, Effect.orDie)
    return yield* run.outcome.pipe(Effect.timeout("10 seconds"), Effect.orDie)
  })

/** Posts the message "buy" to `sessionId` as `headers` say, and opens its event stream. */
export const postMessage = (port: number, headers: Record<string, string>, sessionId: string) =>
  SessionClient.openEventStream({
    port,
    method: "POST",
    path: `/api/sessions/${sessionId}/messages`,
    headers,
    body: JSON.stringify({ message: "buy" })
  })
