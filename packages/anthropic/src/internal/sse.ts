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

/** A body's decoder: `push` each chunk, then `end`. */
export interface Decoder {
  /** The events the chunk completes, or the cap it passed (then nothing of it was decoded). */
  readonly push: (chunk: Uint8Array) => ReadonlyArray<SseMessage> | "line" | "event"
  /** The events left at the end of the body (an event without its blank line is dropped, as the grammar says). */
  readonly end: () => ReadonlyArray<SseMessage>
}

const none: ReadonlyArray<SseMessage> = []

/**
 * The decoder of one body, as one object (a live stream holds it, and no closures): it counts the bytes of the
 * current line and event across chunks (the caps), and decodes the chunks that pass.
 */
class SseDecoder implements Decoder {
  /** Bytes of the current line and event so far, as counted on the raw chunks. */
  private lineBytes = 0
  private eventBytes = 0
  private isCountAfterCR = false
  private readonly text = new TextDecoder("utf-8")
  /** The current line, where a chunk ended inside it. */
  private partial = ""
  private isAfterCR = false
  private event: string | undefined = undefined
  private data: Array<string> | undefined = undefined
  private messages: Array<SseMessage> | undefined = undefined

  constructor(private readonly limits: SseLimits) {}

  push(chunk: Uint8Array): ReadonlyArray<SseMessage> | "line" | "event" {
    const passed = this.count(chunk)
    if (passed !== undefined) return passed
    this.takeText(this.text.decode(chunk, { stream: true }))
    return this.drain()
  }

  end(): ReadonlyArray<SseMessage> {
    this.takeText(this.text.decode())
    if (this.partial !== "") this.takeLine(this.partial)
    this.partial = ""
    return this.drain()
  }

  /** Which cap the chunk passes, if any. */
  private count(chunk: Uint8Array): "line" | "event" | undefined {
    const { limits } = this
    let line = this.lineBytes
    let event = this.eventBytes
    let isAfterCR = this.isCountAfterCR
    let passed: "line" | "event" | undefined
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
      if (line > limits.lineBytes) {
        passed = "line"
        break
      }
      if (event > limits.eventBytes) {
        passed = "event"
        break
      }
    }
    this.lineBytes = line
    this.eventBytes = event
    this.isCountAfterCR = isAfterCR
    return passed
  }

  private takeLine(line: string): void {
    if (line === "") {
      if (this.event !== undefined || this.data !== undefined) {
        ;(this.messages ??= []).push({ event: this.event, data: this.data === undefined ? "" : this.data.join("\n") })
        this.event = undefined
        this.data = undefined
      }
      return
    }
    const colon = line.indexOf(":")
    if (colon === 0) return
    const field = colon === -1 ? line : line.slice(0, colon)
    if (field !== "event" && field !== "data") return
    const value = colon === -1 ? "" : line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1)
    if (field === "event") this.event = value
    else (this.data ??= []).push(value)
  }

  private takeText(decoded: string): void {
    let start = 0
    for (let i = 0; i < decoded.length; i++) {
      const char = decoded.charCodeAt(i)
      if (char === LF && this.isAfterCR) {
        this.isAfterCR = false
        start = i + 1
        continue
      }
      this.isAfterCR = false
      if (char !== LF && char !== CR) continue
      this.takeLine(this.partial === "" ? decoded.slice(start, i) : this.partial + decoded.slice(start, i))
      this.partial = ""
      this.isAfterCR = char === CR
      start = i + 1
    }
    if (start < decoded.length) this.partial += decoded.slice(start)
  }

  private drain(): ReadonlyArray<SseMessage> {
    const out = this.messages
    if (out === undefined) return none
    this.messages = undefined
    return out
  }
}

export const decoder = (limits: SseLimits): Decoder => new SseDecoder(limits)
