/**
 * @tether/http: Tether runs over HTTP for @effect/platform. Start a run and
 * stream its events as Server-Sent Events, stop it from another request,
 * re-attach after a disconnect, with an owner check on every session route;
 * a client that disconnects cancels its run, and a server that shuts down
 * cancels every run with a reason.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Auth from "./Auth.js"

/** @since 0.1.0 */
export * as GracefulShutdown from "./GracefulShutdown.js"

/** @since 0.1.0 */
export * as RouteError from "./RouteError.js"

/** @since 0.1.0 */
export * as ServerSentEvents from "./ServerSentEvents.js"

/** @since 0.1.0 */
export * as SessionRoutes from "./SessionRoutes.js"

/** @since 0.1.0 */
export * as SessionRuns from "./SessionRuns.js"
