/**
 * A Node HTTP server with deadlines for slow clients. Node's defaults let a
 * client take 60 s to send its headers and 300 s for its whole request, and
 * check those deadlines only every 30 s: ten clients trickling a byte a second
 * hold ten connections for minutes. `make` sets a headers deadline (10 s), a
 * whole-request deadline (30 s) and checks them every second; a client past
 * one gets `408` and its connection closed. Responses are not bounded: an
 * event stream may last as long as its run.
 *
 * Pass the server to `@effect/platform-node`'s `NodeHttpServer.layer`, with a
 * listen queue of `defaults.backlog` (4096; Node's is 511): a burst of
 * connections that arrives while the event loop is busy waits in the kernel's
 * queue instead of overflowing it (dropped or reset connections). For the
 * body of a request, `@tether/http`'s routes have a shorter deadline of their
 * own (`SessionRoutes.Limits.bodyTimeout`, 408 `RequestTimeout`).
 *
 * @example
 * ```ts
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { NodeServer } from "@tether/node"
 *
 * const server = NodeServer.make({ headersTimeout: "5 seconds", requestTimeout: "20 seconds" })
 * const listening = NodeHttpServer.layer(() => server, { port: 3000, backlog: NodeServer.defaults.backlog })
 * ```
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import type { Server } from "node:http"
import { Duration } from "effect"

/** @since 0.1.0 */
export interface Options {
  /** How long a client may take to send its request headers (Node's `headersTimeout`). Default 10 seconds. */
  readonly headersTimeout?: Duration.DurationInput | undefined
  /**
   * How long a client may take to send its whole request, headers and body (Node's `requestTimeout`). Default
   * 30 seconds. The headers deadline is never longer.
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** How long an idle keep-alive connection stays open (Node's `keepAliveTimeout`). Default 5 seconds. */
  readonly keepAliveTimeout?: Duration.DurationInput | undefined
  /**
   * How often the deadlines are checked (Node's `connectionsCheckingInterval`): a client is cut off at most this
   * long after its deadline. Default 1 second (Node's is 30).
   */
  readonly checkInterval?: Duration.DurationInput | undefined
}

/**
 * The deadlines `make` sets when not told otherwise.
 *
 * @since 0.1.0
 */
export const defaults = {
  headersTimeout: Duration.seconds(10),
  requestTimeout: Duration.seconds(30),
  keepAliveTimeout: Duration.seconds(5),
  checkInterval: Duration.seconds(1),
  /**
   * The listen queue to pass to `server.listen` (`NodeHttpServer.layer(() => server, { port, backlog })`): Node's
   * default, 511, overflowed under a burst of a thousand connections. The kernel caps it at `net.core.somaxconn`
   * (4096 on current Linux).
   */
  backlog: 4096
} as const

const millis = (duration: Duration.DurationInput) => Math.max(1, Math.round(Duration.toMillis(duration)))

/**
 * A `node:http` server with the deadlines of `options`; it does not listen yet.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Server => {
  const requestTimeout = millis(options.requestTimeout ?? defaults.requestTimeout)
  return createServer({
    headersTimeout: Math.min(millis(options.headersTimeout ?? defaults.headersTimeout), requestTimeout),
    requestTimeout,
    keepAliveTimeout: millis(options.keepAliveTimeout ?? defaults.keepAliveTimeout),
    connectionsCheckingInterval: millis(options.checkInterval ?? defaults.checkInterval)
  })
}
