/**
 * The Effect sides behind an @effect/platform `HttpServer` (`NodeHttpServer`), each route streaming its answer
 * with `HttpServerResponse.stream`. platform-node interrupts a route's fiber when its client goes away, and each
 * side stops its model request on that interrupt: the floor (the raw SDK in a `Stream.async` whose finalizer
 * aborts the request's signal), `@effect/ai` (its stream is interrupted), Tether (the run, started in the request's
 * scope, is cancelled when the scope closes), and Tether's own chat routes (`SessionRoutes`, disconnect = cancel).
 */
import { createServer } from "node:http"
import type Anthropic from "@anthropic-ai/sdk"
import { LanguageModel } from "@effect/ai"
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Logger, LogLevel, Scope, Stream } from "effect"
import { AgentRun, RunRegistry, SessionStore } from "@tether/core"
import { Auth, GracefulShutdown, ServerSentEvents, SessionRoutes, SessionRuns } from "@tether/http"
import * as effectAi from "../sides/effectAi.js"
import * as raw from "../sides/raw.js"
import * as tether from "../sides/tether.js"
import { prompt } from "../sides/common.js"
import { chatRequest, sseFrame, type AppServer, type ChatRequest, type Served } from "./Served.js"

const quiet = Logger.minimumLogLevel(LogLevel.Warning)

/** Builds `server` (a layer that serves on `HttpServer`) on a free port of 127.0.0.1. */
const start = async (
  server: Layer.Layer<never, never, HttpServer.HttpServer>,
  request: (n: number) => ChatRequest
): Promise<AppServer> => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      Layer.provideMerge(server, NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      scope
    ).pipe(Effect.orDie)
  )
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return { port: address.port, request, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const serveChat = <E, R>(route: HttpApp.Default<E, R>) =>
  HttpServer.serve(HttpRouter.empty.pipe(HttpRouter.post("/chat", route)))

const sseResponse = <E>(frames: Stream.Stream<string, E>) =>
  HttpServerResponse.stream(Stream.encodeText(frames), { contentType: "text/event-stream" })

/** The raw SDK's events as a stream whose finalizer aborts the request first (see EFFECT-NOTES, trap 1). */
const rawEvents = (anthropic: Anthropic) =>
  Stream.async<Anthropic.MessageStreamEvent, unknown>((emit) => {
    const controller = new AbortController()
    void raw.events(anthropic, controller.signal).then(
      async (events) => {
        for await (const event of events) await emit.single(event)
        await emit.end()
      },
      (error) => emit.fail(error)
    )
    return Effect.sync(() => controller.abort())
  })

export const floor: Served = {
  key: "rawPlatform",
  label: "raw SDK, @effect/platform",
  serve: (url) => {
    const anthropic = raw.client(url)
    return start(
      serveChat(Effect.sync(() => sseResponse(Stream.map(rawEvents(anthropic), sseFrame)))),
      () => chatRequest
    )
  }
}

export const effectAiBehindPlatform: Served = {
  key: "effectAiPlatform",
  label: "@effect/ai, @effect/platform",
  serve: (url) =>
    start(
      serveChat(
        Effect.map(LanguageModel.LanguageModel, (model) =>
          sseResponse(
            model.streamText({ prompt }).pipe(
              Stream.filter((part) => part.type === "text-delta"),
              Stream.map((part) => sseFrame(part.delta))
            )
          )
        )
      ).pipe(Layer.provide(effectAi.layer(url))),
      () => chatRequest
    )
}

export const tetherBehindPlatform: Served = {
  key: "tetherPlatform",
  label: "Tether, @effect/platform",
  serve: (url) =>
    start(
      serveChat(Effect.map(AgentRun.start(tether.chat, prompt), (run) => ServerSentEvents.response(run.events))).pipe(
        Layer.provide(Layer.merge(tether.modelLayer(url), quiet))
      ),
      () => chatRequest
    )
}

const token = "bench-token"

export const tetherSessionRoutes: Served = {
  key: "tetherSessions",
  label: "Tether chat routes (SessionRoutes)",
  serve: (url) => {
    const app = HttpRouter.empty.pipe(
      HttpRouter.mount("/api", SessionRoutes.router(tether.chat, { limits: { maxRunningPerCaller: 1000 } }))
    )
    const server = GracefulShutdown.serve(app).pipe(
      Layer.provide(
        Layer.mergeAll(
          SessionRuns.layer().pipe(Layer.provideMerge(Layer.mergeAll(RunRegistry.layer(), SessionStore.layerMemory()))),
          Auth.layerBearer({ [token]: "bench" }),
          tether.modelLayer(url),
          quiet
        )
      )
    )
    return start(server, (n) => ({
      path: `/api/sessions/s-${n}/messages`,
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ message: prompt })
    }))
  }
}
