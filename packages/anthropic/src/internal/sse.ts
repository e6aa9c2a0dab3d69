/**
 * The Server-Sent Events of a streamed response, decoded from its body's bytes as they arrive, with the size caps
 * (`maxLineBytes`, `maxEventBytes`) counted on the bytes before anything is decoded or buffered: a chunk that passes
 * a cap is refused whole. The line grammar is the SSE one (a line ends at LF, CR or CRLF, even across chunks; a
 * blank line ends an event; `:` starts a comment); only the `event` and `data` fields matter to the Messages API.
 */

/** The largest SSE line and event a response may send, in bytes. */
export interface SseLimits {
  readonly lineBytes: number
  readonly eventBytes: number
}

/** One event: its `event` field (`undefined` without one) and its data lines joined with LF. */
export interface SseMessage {
  readonly event: string | undefined
  readonly data: string
}

const LF = 0x0a
const CR = 0x0d

/**
 * Counts the bytes of the current line and of the current event (up to its blank line) across the chunks of a
 * body; says which cap a chunk passed, if any.
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

/** A body's decoder: `push` each chunk, then `end`. */
export interface Decoder {
  /** The events the chunk completes, or the cap it passed (then nothing of it was decoded). */
  readonly push: (chunk: Uint8Array) => ReadonlyArray<SseMessage> | "line" | "event"
  /** The events left at the end of the body (an event without its blank line is dropped, as the grammar says). */
  readonly end: () => ReadonlyArray<SseMessage>
}

const none: ReadonlyArray<SseMessage> = []

export const decoder = (limits: SseLimits): Decoder => {
  const count = sizeCounter(limits)
  const text = new TextDecoder("utf-8")
  /** The current line, where a chunk ended inside it. */
  let partial = ""
  let isAfterCR = false
  let event: string | undefined
  let data: Array<string> = []
  let messages: Array<SseMessage> = []

  const takeLine = (line: string): void => {
    if (line === "") {
      if (event !== undefined || data.length > 0) {
        messages.push({ event, data: data.join("\n") })
        event = undefined
        data = []
      }
      return
    }
    const colon = line.indexOf(":")
    if (colon === 0) return
    const field = colon === -1 ? line : line.slice(0, colon)
    if (field !== "event" && field !== "data") return
    const value = colon === -1 ? "" : line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1)
    if (field === "event") event = value
    else data.push(value)
  }

  const takeText = (decoded: string): void => {
    let start = 0
    for (let i = 0; i < decoded.length; i++) {
      const char = decoded.charCodeAt(i)
      if (char === LF && isAfterCR) {
        isAfterCR = false
        start = i + 1
        continue
      }
      isAfterCR = false
      if (char !== LF && char !== CR) continue
      takeLine(partial === "" ? decoded.slice(start, i) : partial + decoded.slice(start, i))
      partial = ""
      isAfterCR = char === CR
      start = i + 1
    }
    if (start < decoded.length) partial += decoded.slice(start)
  }

  const drain = (): ReadonlyArray<SseMessage> => {
    if (messages.length === 0) return none
    const out = messages
    messages = []
    return out
  }

  return {
    push: (chunk) => {
      const passed = count(chunk)
      if (passed !== undefined) return passed
      takeText(text.decode(chunk, { stream: true }))
      return drain()
    },
    end: () => {
      takeText(text.decode())
      if (partial !== "") takeLine(partial)
      partial = ""
      return drain()
    }
  }
}
