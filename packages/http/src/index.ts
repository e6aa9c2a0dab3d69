/**
 * @tether/http: Tether runs over HTTP for @effect/platform. Start a run and
 * stream its events as Server-Sent Events, stop it from another request,
 * re-attach after a disconnect, with an owner check on every session route;
 * a client that disconnects cancels its run, and a server that shuts down
 * cancels every run with a reason.
 *
 * @since 0.1.0
 */
export * as Auth from "./Auth.js"
export * as GracefulShutdown from "./GracefulShutdown.js"
export * as RouteError from "./RouteError.js"
export * as ServerSentEvents from "./ServerSentEvents.js"
export * as SessionRoutes from "./SessionRoutes.js"
