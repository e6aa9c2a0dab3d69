/**
 * A client on a raw TCP socket, for clients that misbehave: headers sent and then nothing, a body trickling one
 * byte at a time. It records what the server sent and when the server closed the connection.
 */
import * as net from "node:net"
import { Deferred, Effect } from "effect"
import type { Duration, Scope } from "effect"

export interface RawClient {
  /** Writes `text` on the socket. */
  readonly write: (text: string) => Effect.Effect<void>
  /** Writes `body` one byte every `every`, until done or the socket closes. */
  readonly trickle: (body: string, every: Duration.DurationInput) => Effect.Effect<void>
  /** Waits for the server to close the connection; what it sent, and when it closed (ms after connecting). */
  readonly closed: Effect.Effect<{ readonly received: string; readonly afterMillis: number }>
  readonly isClosed: Effect.Effect<boolean>
}

/** Connects to 127.0.0.1:`port`; the socket is destroyed when the scope closes. */
export const connect = (port: number): Effect.Effect<RawClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const closed = yield* Deferred.make<{ readonly received: string; readonly afterMillis: number }>()
    const socket = yield* Effect.acquireRelease(
      Effect.async<net.Socket>((resume) => {
        const connectedAt = performance.now()
        let received = ""
        const socket = net.connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
        socket.setEncoding("utf8")
        socket.on("data", (chunk: string) => (received += chunk))
        socket.on("error", () => {})
        socket.on("close", () =>
          Deferred.unsafeDone(closed, Effect.succeed({ received, afterMillis: performance.now() - connectedAt }))
        )
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const write = (text: string) =>
      Effect.sync(() => {
        if (!socket.destroyed) socket.write(text)
      })
    return {
      write,
      trickle: (body, every) =>
        Effect.forEach(body, (byte) => write(byte).pipe(Effect.zipRight(Effect.sleep(every))), {
          discard: true
        }).pipe(Effect.raceFirst(Deferred.await(closed))),
      closed: Deferred.await(closed),
      isClosed: Deferred.isDone(closed)
    }
  })
