/**
 * An HTTP/1.1 client on a raw socket that reads a chunked response as the wire carries it: how many chunks the
 * server wrote (one per `write` of the response) and the SSE frames they held, in order.
 */
import * as net from "node:net"
import { Effect } from "effect"

export interface ChunkedResponse {
  readonly status: number
  /** The body's chunks, as the server wrote them (the last, empty one not counted). */
  readonly chunks: number
  /** The SSE frames with an id, in the order they arrived (comments skipped). */
  readonly frames: ReadonlyArray<{ readonly id: number; readonly event: string; readonly data: unknown }>
}

const parse = (raw: Buffer): ChunkedResponse => {
  const headerEnd = raw.indexOf("\r\n\r\n")
  const head = raw.subarray(0, headerEnd).toString("latin1")
  const status = Number(head.split(" ")[1])
  if (!/transfer-encoding: chunked/i.test(head)) throw new Error(`not a chunked response:\n${head}`)
  let at = headerEnd + 4
  let chunks = 0
  const body: Array<Buffer> = []
  for (;;) {
    const lineEnd = raw.indexOf("\r\n", at)
    const size = parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16)
    if (size === 0) break
    body.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size))
    chunks++
    at = lineEnd + 2 + size + 2
  }
  const frames = Buffer.concat(body)
    .toString("utf8")
    .split("\n\n")
    .flatMap((frame) => {
      const lines = frame.split("\n")
      const field = (name: string) => lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
      const id = field("id")
      return id === undefined ? [] : [{ id: Number(id), event: field("event")!, data: JSON.parse(field("data")!) }]
    })
  return { status, chunks, frames }
}

/** Sends one request (`Connection: close`) and reads the response to its end. */
export const request = (options: {
  readonly port: number
  readonly method: "GET" | "POST"
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string | undefined
}): Effect.Effect<ChunkedResponse> =>
  Effect.async<ChunkedResponse>((resume) => {
    const received: Array<Buffer> = []
    const socket = net.connect(options.port, "127.0.0.1", () => {
      const body = options.body ?? ""
      const headers = {
        host: "127.0.0.1",
        connection: "close",
        ...(body === ""
          ? {}
          : { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }),
        ...options.headers
      }
      const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`)
      socket.write(`${options.method} ${options.path} HTTP/1.1\r\n${lines.join("")}\r\n${body}`)
    })
    socket.on("data", (data: Buffer) => received.push(data))
    socket.on("error", (error) => resume(Effect.die(error)))
    socket.on("close", () => resume(Effect.try(() => parse(Buffer.concat(received))).pipe(Effect.orDie)))
    return Effect.sync(() => socket.destroy())
  })
