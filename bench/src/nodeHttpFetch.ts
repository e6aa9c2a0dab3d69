/**
 * A minimal `fetch` on `node:http`, for the SDK's `fetch` option: what a streaming request holds when the transport
 * is a plain `node:http` request instead of Node's fetch (undici). With it, a side's heap per live run is mostly its
 * own state, which is how "Tether's own state per run" is measured. It does what the Anthropic SDK asks of a fetch
 * and no more: a string URL or `URL`, a string or byte body, an `AbortSignal`, keep-alive sockets.
 */
import * as http from "node:http"
import { Readable } from "node:stream"

const agent = new http.Agent({ keepAlive: true })

const toHeaders = (incoming: http.IncomingHttpHeaders): Headers => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(incoming)) {
    if (Array.isArray(value)) value.forEach((item) => headers.append(name, item))
    else if (value !== undefined) headers.set(name, value)
  }
  return headers
}

const abortError = (signal: AbortSignal): unknown =>
  signal.reason ?? new DOMException("This operation was aborted", "AbortError")

export const nodeHttpFetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
  new Promise<Response>((resolve, reject) => {
    if (input instanceof Request) throw new TypeError("nodeHttpFetch takes a URL, not a Request")
    const body = init?.body ?? undefined
    if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) {
      throw new TypeError("nodeHttpFetch sends a string or bytes body only")
    }
    const signal = init?.signal ?? undefined
    if (signal?.aborted) return reject(abortError(signal))
    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((value, name) => (headers[name] = value))
    const request = http.request(new URL(input), { method: init?.method ?? "GET", headers, agent })
    const onAbort = () => request.destroy(abortError(signal!) as Error)
    const release = () => signal?.removeEventListener("abort", onAbort)
    signal?.addEventListener("abort", onAbort, { once: true })
    request.once("response", (response) => {
      response.once("close", release)
      const stream = Readable.toWeb(response) as ReadableStream<Uint8Array>
      resolve(new Response(stream, { status: response.statusCode ?? 200, headers: toHeaders(response.headers) }))
    })
    request.once("error", (error) => {
      release()
      reject(error)
    })
    request.end(body ?? undefined)
  })
