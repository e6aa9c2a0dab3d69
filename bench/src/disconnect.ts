/**
 * Scenario 6: an HTTP client of a chat server disconnects mid-answer; how long until the model's socket closes.
 * Each side sits behind its idiomatic server (`servers/`): a client POSTs a message, reads the first bytes of the
 * streamed answer, waits until the model stream is mid-gap, and drops its connection; the fake model server, in a
 * process of its own, notes when the model request's socket closed. The sides take turns, trial by trial. The
 * floor is the raw SDK behind @effect/platform.
 */
import * as http from "node:http"
import * as RemoteFake from "./remoteFake.js"
import type { AppServer, Served } from "./servers/index.js"
import { sleep, summarize, within, type Summary } from "./stats.js"

export interface DisconnectResult {
  readonly gapMillis: number
  /** Milliseconds from the client's disconnect to the model socket's close, by side key. */
  readonly sides: Readonly<Record<string, Summary>>
}

/** Opens the streaming request and resolves once the first bytes of the answer came back. */
const open = (server: AppServer, n: number) =>
  new Promise<http.ClientRequest>((resolve, reject) => {
    const spec = server.request(n)
    const request = http.request({
      host: "127.0.0.1",
      port: server.port,
      method: "POST",
      path: spec.path,
      headers: { ...spec.headers, "content-length": String(Buffer.byteLength(spec.body)) },
      agent: false
    })
    request.once("error", reject)
    request.once("response", (response) => {
      response.on("error", () => {})
      if (response.statusCode !== 200) return reject(new Error(`the server answered ${response.statusCode}`))
      let isFirst = true
      response.on("data", () => {
        if (isFirst) resolve(request)
        isFirst = false
      })
    })
    request.end(spec.body)
  })

const trial = async (fake: RemoteFake.RemoteFake, server: AppServer, n: number, gapMillis: number) => {
  const index = fake.requestCount()
  const request = await open(server, n)
  request.on("error", () => {})
  await fake.tokensAtLeast(index, 2)
  await sleep(gapMillis / 2)
  const t0 = RemoteFake.now()
  request.destroy()
  const { closedAt } = await fake.closed(index)
  return closedAt - t0
}

export const disconnect = async (
  sides: ReadonlyArray<Served>,
  gapMillis: number,
  trials: number
): Promise<DisconnectResult> => {
  const fake = await RemoteFake.start(gapMillis, 20)
  const servers: Array<AppServer> = []
  const times = sides.map(() => [] as Array<number>)
  try {
    for (const side of sides) servers.push(await side.serve(fake.url))
    for (let i = 0; i < trials; i++) {
      for (let k = 0; k < sides.length; k++) {
        const s = (i + k) % sides.length
        const what = `${sides[s]!.label}: disconnect trial ${i + 1}`
        times[s]!.push(await within(trial(fake, servers[s]!, i, gapMillis), 30_000, what))
      }
    }
  } finally {
    for (const server of servers) await server.close()
    await fake.close()
  }
  return { gapMillis, sides: Object.fromEntries(sides.map((side, s) => [side.key, summarize(times[s]!)])) }
}
