/**
 * A small round-robin front for the replicas of `pnpm start:cluster`: a plain `node:http` proxy on one port that
 * sends each request to the next replica in turn. Responses stream through as they come (Server-Sent Events are not
 * buffered); a client that disconnects has its upstream request destroyed, so the replica sees the disconnect too (a
 * run with the `cancel` policy is cancelled). A replica that does not answer gets a 502; the replicas to rotate over
 * are asked for on every request, so one that exited can be left out.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Front from "./Front.js"
 *
 * const program = Effect.gen(function* () {
 *   const port = yield* Front.serve({ port: 3000, upstreams: () => [3001, 3002, 3003] })
 *   return `http://localhost:${port}`
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"

/** @since 0.1.0 */
export interface Options {
  /** The port to listen on (0: a free one); on every interface unless `host` is given. */
  readonly port: number
  readonly host?: string | undefined
  /** The HTTP ports (on 127.0.0.1) of the replicas to rotate over, asked for on every request. */
  readonly upstreams: () => ReadonlyArray<number>
}

/**
 * The front could not listen (the port is taken, say).
 *
 * @since 0.1.0
 */
export class FrontListenError extends Schema.TaggedError<FrontListenError>()("FrontListenError", {
  port: Schema.Number,
  message: Schema.String
}) {}

/** Headers of one hop, never forwarded (RFC 9110 §7.6.1). */
const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"])

const forwardable = (headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name)))

const proxy = (upstreams: () => ReadonlyArray<number>) => {
  let next = 0
  return (request: http.IncomingMessage, response: http.ServerResponse) => {
    const ports = upstreams()
    if (ports.length === 0) {
      response.writeHead(503, { "content-type": "text/plain" }).end("no replica is running\n")
      return
    }
    const port = ports[next++ % ports.length]!
    const upstream = http.request({
      host: "127.0.0.1",
      port,
      method: request.method,
      path: request.url,
      headers: { ...forwardable(request.headers), "x-forwarded-for": request.socket.remoteAddress ?? "" }
    })
    upstream.on("response", (answer) => {
      response.writeHead(answer.statusCode ?? 502, forwardable(answer.headers))
      // Headers now, before the first event of a stream that may take a while.
      response.flushHeaders()
      answer.pipe(response)
    })
    upstream.on("error", () => {
      if (response.headersSent) response.destroy()
      else response.writeHead(502, { "content-type": "text/plain" }).end(`replica on port ${port} does not answer\n`)
    })
    // The client went away before the whole answer: so does the request to the replica.
    response.on("close", () => {
      if (!response.writableFinished) upstream.destroy()
    })
    request.pipe(upstream)
  }
}

/**
 * Serves the front until the scope closes (open connections are closed then); resolves with its port.
 *
 * @since 0.1.0
 */
export const serve = (options: Options): Effect.Effect<number, FrontListenError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<http.Server, FrontListenError>((resume) => {
      const server = http.createServer(proxy(options.upstreams))
      server.once("error", (error) =>
        resume(Effect.fail(new FrontListenError({ port: options.port, message: error.message })))
      )
      server.listen(options.port, options.host, () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => (server.address() as { readonly port: number }).port))
