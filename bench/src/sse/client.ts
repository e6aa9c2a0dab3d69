/**
 * The load of the SSE scenario, from a process of its own (so the server's CPU time is the server's alone):
 * `sseClientMain <port> <encoder> <runs> <concurrency>` POSTs `runs` requests, `concurrency` at a time, each on a
 * raw socket, reads each chunked answer to its end, and prints one JSON line: the events (SSE frames with an id)
 * and the HTTP chunks received, and the milliseconds it took.
 */
import * as net from "node:net"

export interface LoadResult {
  readonly events: number
  readonly chunks: number
  readonly millis: number
}

/** HTTP chunks and SSE frames with an id in a raw chunked response. */
const count = (raw: Buffer): { readonly events: number; readonly chunks: number } => {
  let at = raw.indexOf("\r\n\r\n") + 4
  let chunks = 0
  let events = 0
  for (;;) {
    const lineEnd = raw.indexOf("\r\n", at)
    const size = parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16)
    if (!(size > 0)) break
    const body = raw.subarray(lineEnd + 2, lineEnd + 2 + size)
    chunks++
    for (let i = body.indexOf("id: "); i !== -1; i = body.indexOf("\nid: ", i + 1)) events++
    at = lineEnd + 2 + size + 2
  }
  return { events, chunks }
}

const one = (port: number, path: string) =>
  new Promise<{ readonly events: number; readonly chunks: number }>((resolve, reject) => {
    const received: Array<Buffer> = []
    const socket = net.connect(port, "127.0.0.1", () =>
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    )
    socket.on("data", (data: Buffer) => received.push(data))
    socket.on("error", reject)
    socket.on("close", () => resolve(count(Buffer.concat(received))))
  })

export const load = async (port: number, encoder: string, runs: number, concurrency: number): Promise<LoadResult> => {
  const t0 = performance.now()
  let next = 0
  let events = 0
  let chunks = 0
  const worker = async () => {
    while (next < runs) {
      const n = next++
      const answer = await one(port, `/sse/${encoder}/${n}`)
      events += answer.events
      chunks += answer.chunks
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { events, chunks, millis: performance.now() - t0 }
}
