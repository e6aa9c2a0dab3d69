/**
 * Serving with a graceful shutdown. When the server's layer closes (on SIGINT
 * or SIGTERM under `NodeRuntime.runMain`), every running run is cancelled with
 * reason `Shutdown` first, while the server still writes responses: each open
 * event stream ends with its `RunCancelled` event, and the connections close.
 * Only then is the handler removed and the server closed. Runs that start
 * during the drain are cancelled the same way when the `RunRegistry` layer
 * closes.
 *
 * @example
 * ```ts
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { RunRegistry } from "@tether/core"
 * import { GracefulShutdown } from "@tether/http"
 *
 * const app = HttpRouter.empty.pipe(HttpRouter.get("/health", HttpServerResponse.text("ok")))
 * const main = GracefulShutdown.serve(app, { deadline: "10 seconds" }).pipe(
 *   Layer.provide(RunRegistry.layer()),
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 3000 }))
 * )
 * // NodeRuntime.runMain(Layer.launch(main)): SIGINT or SIGTERM drains the runs, then closes the server
 * ```
 *
 * @since 0.1.0
 */
import { HttpServer } from "@effect/platform"
import type { HttpApp, HttpServerRequest } from "@effect/platform"
import { Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { CancelReason, RunRegistry } from "@tether/core"

/**
 * How long the drain waits for runs to stop when nothing else is said.
 *
 * @since 0.1.0
 */
export const defaultDeadline: Duration.Duration = Duration.seconds(10)

/**
 * Cancels every running run with `Shutdown` and waits for them, at most
 * `deadline`; logs what it did.
 *
 * @since 0.1.0
 */
export const drain = (
  deadline: Duration.DurationInput = defaultDeadline
): Effect.Effect<void, never, RunRegistry.RunRegistry> =>
  Effect.gen(function* () {
    const registry = yield* RunRegistry.RunRegistry
    const running = yield* registry.running
    if (running.length === 0) return
    yield* Effect.logDebug(`shutting down: cancelling ${running.length} running run(s)`)
    const stopped = yield* registry.cancelAll(new CancelReason.Shutdown()).pipe(Effect.timeoutOption(deadline))
    if (stopped._tag === "None") {
      yield* Effect.logWarning(`shutting down: runs still going after ${Duration.format(Duration.decode(deadline))}`)
    }
  })

/**
 * `HttpServer.serve(app)` with a drain before the server closes: every running
 * run is cancelled with `Shutdown` (waiting at most `deadline`) while the open
 * event streams can still deliver their last event.
 *
 * @since 0.1.0
 */
export const serve = <E, R>(
  app: HttpApp.Default<E, R>,
  options?: { readonly deadline?: Duration.DurationInput | undefined }
): Layer.Layer<
  never,
  never,
  | HttpServer.HttpServer
  | RunRegistry.RunRegistry
  | Exclude<Exclude<R, HttpServerRequest.HttpServerRequest>, Scope.Scope>
> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      yield* HttpServer.serveEffect(app)
      // Added after the handler, so it runs before the handler is removed and the server closes.
      yield* Effect.addFinalizer(() => drain(options?.deadline))
    })
  )
