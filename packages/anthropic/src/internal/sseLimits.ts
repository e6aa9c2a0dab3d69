import { ModelError } from "@tether/core"

/** The largest SSE line and event a response may send, in bytes. */
export interface SseLimits {
  readonly lineBytes: number
  readonly eventBytes: number
}

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

const LF = 0x0a
const CR = 0x0d

/**
 * Counts the bytes of the current line and of the current event (up to its blank line) across the chunks of a
 * body; says which cap a chunk passed, if any. A line ends at LF, CR or CRLF, as in the SSE grammar.
 */
const sizeCounter = (limits: SseLimits) => {
  let line = 0
  let event = 0
  let isAfterCR = false
  return (chunk: Uint8Array): "line" | "event" | undefined => {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]
      if (byte === LF || byte === CR) {
        // The LF of a CRLF ends nothing more.
        if (byte === LF && isAfterCR) {
          isAfterCR = false
          continue
        }
        isAfterCR = byte === CR
        if (line === 0) event = 0
        line = 0
        continue
      }
      isAfterCR = false
      line++
      event++
      if (line > limits.lineBytes) return "line"
      if (event > limits.eventBytes) return "event"
    }
    return undefined
  }
}

/**
 * `body`, read only as the consumer asks (nothing is read ahead), failing with `MalformedResponseError` at the
 * chunk that passes a cap. The source is then cancelled: nothing more of it is read or buffered, and fetch closes
 * the connection.
 */
const capBody = (body: ReadableStream<Uint8Array>, limits: SseLimits): ReadableStream<Uint8Array> => {
  const reader = body.getReader()
  const count = sizeCounter(limits)
  return new ReadableStream<Uint8Array>(
    {
      pull: async (controller) => {
        const { done, value } = await reader.read()
        if (done) return controller.close()
        const passed = count(value)
        if (passed === undefined) return controller.enqueue(value)
        const limit = passed === "line" ? limits.lineBytes : limits.eventBytes
        const error = new ModelError.MalformedResponseError({
          message: `an SSE ${passed} of the response passed the ${limit}-byte cap`
        })
        controller.error(error)
        await reader.cancel(error).catch(() => {})
      },
      cancel: (reason) => reader.cancel(reason)
    },
    { highWaterMark: 0 }
  )
}

const isEventStream = (response: Response): boolean =>
  response.headers.get("content-type")?.toLowerCase().includes("text/event-stream") === true

/**
 * `fetch` whose event-stream bodies are capped (see `capBody`). The cap has to sit below the SDK: its SSE decoder
 * buffers a line until its newline, and the data lines of an event until its blank line, without a bound.
 */
export const cappedFetch =
  (fetch: Fetch, limits: SseLimits): Fetch =>
  async (input, init) => {
    const response = await fetch(input, init)
    if (response.body === null || !isEventStream(response)) return response
    const capped = new Response(capBody(response.body, limits), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers
    })
    // (The SDK logs the URL of a response.)
    Object.defineProperty(capped, "url", { value: response.url })
    return capped
  }
