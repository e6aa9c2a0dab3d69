/**
 * A lean `fetch` on `node:http` / `node:https`: the SDK's transport on Node unless the user passes a `fetch` of
 * their own (chosen by the `#defaultFetch` import, see `defaultFetch.node.ts`). A live streaming request holds
 * about half the heap it holds on Node's fetch (undici), and aborting its signal destroys the request, so the
 * socket closes in that call.
 *
 * It does what the Anthropic SDK asks of a fetch: a string or `URL` input, a string or byte body, headers, an
 * `AbortSignal`; the response body is a pull-based `ReadableStream` that pauses the socket when nobody reads
 * (backpressure). Failures look like fetch's to the SDK: an abort rejects (or errors the body) with the signal's
 * reason, an `AbortError`; a network failure rejects with Node's error (the SDK makes it an `APIConnectionError`).
 * Anything else (a `Request` input, a stream or form body, another protocol) goes to `globalThis.fetch`. It
 * follows no redirect and asks for no compression (it sends no `accept-encoding`): the Messages API needs neither.
 */
import * as http from "node:http"
import * as https from "node:https"

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/**
 * An idle keep-alive socket closes after this (undici's default too): shorter than a server's usual 5 s, so a
 * socket taken from the pool is rarely one the server is closing.
 */
const idleSocketMillis = 4_000

let httpAgent: http.Agent | undefined
let httpsAgent: https.Agent | undefined

/** One keep-alive agent per protocol, made on first use. */
const agentFor = (protocol: string): http.Agent =>
  protocol === "https:"
    ? (httpsAgent ??= new https.Agent({ keepAlive: true, timeout: idleSocketMillis }))
    : (httpAgent ??= new http.Agent({ keepAlive: true, timeout: idleSocketMillis }))

/** Statuses whose response has no body (`new Response` refuses one). */
const isNullBodyStatus = (status: number) => status === 204 || status === 205 || status === 304

const abortReason = (signal: AbortSignal): unknown =>
  signal.reason ?? new DOMException("This operation was aborted", "AbortError")

type Body = string | Uint8Array | ArrayBuffer | undefined

/** The body as `node:http` sends it, or `false` when it is of a kind left to `globalThis.fetch`. */
const bodyOf = (body: BodyInit | null | undefined): Body | false => {
  if (body === undefined || body === null) return undefined
  if (typeof body === "string" || body instanceof Uint8Array) return body
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  return false
}

/**
 * The request's headers as one flat list of names and values: `node:http` then writes them as they are, without
 * keeping a table of them per request (so `host` is added here, as `node:http` adds it to a table of headers).
 */
const outgoingHeaders = (url: URL, init: HeadersInit | undefined, body: Body): Array<string> => {
  const headers: Array<string> = []
  let hasHost = false
  let hasLength = false
  if (init !== undefined) {
    ;(init instanceof Headers ? init : new Headers(init)).forEach((value, name) => {
      hasHost ||= name === "host"
      hasLength ||= name === "content-length"
      headers.push(name, value)
    })
  }
  if (!hasHost) headers.push("host", url.host)
  if (body !== undefined && !hasLength) {
    headers.push("content-length", String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength))
  }
  return headers
}

/**
 * `node:http` keeps the request's head, once sent, as the string it built by appending each header: a rope of some
 * sixty small strings, held (about 1.5 KiB) for as long as the request lives, which for a stream is its whole
 * length. Reading a character of it makes V8 flatten it into one string in place. Only a read of a field that
 * `node:http` has long had (`_header`, which libraries such as nock read too); without it, nothing happens.
 */
const flattenHead = (request: http.ClientRequest): void => {
  const head: unknown = (request as { _header?: unknown })._header
  if (typeof head === "string") head.charCodeAt(0)
}

/** The response's headers as name-value pairs, repeated names kept (what `new Response` takes). */
const incomingHeaders = (raw: ReadonlyArray<string>): Array<[string, string]> => {
  const pairs: Array<[string, string]> = []
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!])
  return pairs
}

/**
 * One request and its response. Its methods are the request's listeners and the body's underlying source, so a
 * live response holds this one object and no closures of its own.
 */
class Exchange implements UnderlyingDefaultSource<Uint8Array> {
  private response: http.IncomingMessage | undefined
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined
  /** The promise has settled and the body (if any) has ended, failed or been cancelled. */
  private isSettled = false
  private isResolved = false

  constructor(
    private readonly request: http.ClientRequest,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (response: Response) => void,
    private readonly reject: (error: unknown) => void
  ) {
    this.onAbort = this.onAbort.bind(this)
    this.onData = this.onData.bind(this)
    this.onEnd = this.onEnd.bind(this)
    this.onError = this.onError.bind(this)
    request.once("response", this.onResponse.bind(this))
    request.on("error", this.onError)
    signal?.addEventListener("abort", this.onAbort, { once: true })
  }

  onResponse(response: http.IncomingMessage): void {
    this.response = response
    response.on("error", this.onError)
    const status = response.statusCode ?? 0
    const headers = incomingHeaders(response.rawHeaders)
    let result: Response
    try {
      if (isNullBodyStatus(status)) {
        response.resume()
        result = new Response(null, { status, statusText: response.statusMessage ?? "", headers })
        this.settle()
      } else {
        result = new Response(new ReadableStream(this), { status, statusText: response.statusMessage ?? "", headers })
      }
    } catch (error) {
      // A status or header `Response` refuses (a 1xx final status, say): not a response fetch could give.
      this.request.destroy()
      return this.onError(error)
    }
    this.isResolved = true
    this.resolve(result)
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.controller = controller
    const response = this.response!
    response.on("data", this.onData)
    response.once("end", this.onEnd)
  }

  pull(): void {
    this.response!.resume()
  }

  cancel(): void {
    // Nothing more will be read: the socket cannot be reused, so it goes.
    this.settle()
    this.request.destroy()
  }

  onData(chunk: Buffer): void {
    if (this.isSettled) return
    this.controller!.enqueue(chunk)
    if (this.controller!.desiredSize! <= 0) this.response!.pause()
  }

  onEnd(): void {
    if (this.isSettled) return
    this.settle()
    this.controller!.close()
  }

  onError(error: unknown): void {
    if (this.isSettled) return
    this.settle()
    if (!this.isResolved) this.reject(error)
    else this.controller?.error(error)
  }

  /**
   * The signal's reason goes to whoever waits (the promise or a read), then the request and its socket go: without
   * an error, which whoever waits already has (destroyed with one, the request and its socket would each emit it,
   * a tick later, to listeners that do nothing with it).
   */
  onAbort(): void {
    this.onError(abortReason(this.signal!))
    this.request.destroy()
  }

  private settle(): void {
    this.isSettled = true
    this.signal?.removeEventListener("abort", this.onAbort)
  }
}

/**
 * A `fetch` on `node:http` / `node:https` with keep-alive agents (one per protocol), for the SDK's `fetch`
 * option. See the module's comment for what it does and what it leaves to `globalThis.fetch`.
 */
export const nodeHttpFetch: Fetch = (input, init) => {
  const url = typeof input === "string" ? new URL(input) : input instanceof URL ? input : undefined
  const body = bodyOf(init?.body)
  if (url === undefined || body === false || (url.protocol !== "http:" && url.protocol !== "https:")) {
    return globalThis.fetch(input, init)
  }
  const signal = init?.signal ?? undefined
  if (signal?.aborted) return Promise.reject(abortReason(signal))
  return new Promise<Response>((resolve, reject) => {
    const headers = outgoingHeaders(url, init?.headers, body)
    const options: http.RequestOptions = { method: init?.method ?? "GET", headers, agent: agentFor(url.protocol) }
    const request = url.protocol === "https:" ? https.request(url, options) : http.request(url, options)
    new Exchange(request, signal, resolve, reject)
    request.end(body)
    flattenHead(request)
    // Written into the head already; the agent keeps the options of a socket's first request for the socket's life.
    headers.length = 0
  })
}
