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
 * `refuse` answers some requests before any listener of the server sees them
 * (the router of `@effect/platform`, which costs a few milliseconds of CPU per
 * request): `@tether/http`'s `SessionRoutes.refuseWhenFull` answers the starts
 * of a burst past the cap of live runs with 503 in microseconds, so the event
 * loop stays free for the runs it serves and their Stop.
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
import type { IncomingMessage, Server, ServerResponse } from "node:http"
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
  /**
   * Looks at each request as it arrives, before any `request` listener: an answer is sent at once (the body of the
   * request is not read, and the connection closes after it); `undefined` lets the request through. It must be
   * synchronous and cheap: it runs on every request. Default: every request goes through.
   */
  readonly refuse?: ((request: IncomingMessage) => Refusal | undefined) | undefined
}

/**
 * An answer `Options.refuse` gives in place of the server's listeners.
 *
 * @since 0.1.0
 */
export interface Refusal {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
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
  const server = createServer({
    headersTimeout: Math.min(millis(options.headersTimeout ?? defaults.headersTimeout), requestTimeout),
    requestTimeout,
    keepAliveTimeout: millis(options.keepAliveTimeout ?? defaults.keepAliveTimeout),
    connectionsCheckingInterval: millis(options.checkInterval ?? defaults.checkInterval)
  })
  const refuse = options.refuse
  if (refuse !== undefined) {
    // Listeners cannot stop one another, so the refusal sits in front of them all: a request it answers is never
    // emitted to them (the router of @effect/platform registers its own listener when the server starts).
    const emit = server.emit.bind(server) as (event: string | symbol, ...args: Array<unknown>) => boolean
    server.emit = ((event: string | symbol, ...args: Array<unknown>) => {
      if (event === "request") {
        const refusal = refuse(args[0] as IncomingMessage)
        if (refusal !== undefined) {
          const response = args[1] as ServerResponse
          response.shouldKeepAlive = false
          response
            .writeHead(refusal.status, { ...refusal.headers, "content-length": Buffer.byteLength(refusal.body) })
            .end(refusal.body)
          return true
        }
      }
      return emit(event, ...args)
    }) as Server["emit"]
  }
  return server
}
