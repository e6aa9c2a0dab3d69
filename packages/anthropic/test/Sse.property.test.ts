import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { decoder, type SseMessage } from "../src/internal/sse.js"

const limits = { lineBytes: 1024 * 1024, eventBytes: 4 * 1024 * 1024 }

/** Text without line breaks: ASCII, accents, CJK and astral characters (split across chunks mid-character). */
const lineText = fc
  .array(fc.constantFrom("a", "z", " ", ":", "{", '"', "é", "漢", "😀", "\u2028"), { maxLength: 12 })
  .map((chars) => chars.join(""))

const message = fc.record({
  event: fc.option(fc.constantFrom("message_start", "content_block_delta", "ping", "error"), { nil: undefined }),
  data: fc.array(lineText, { minLength: 1, maxLength: 3 })
})

/** One event as a server writes it, with comments and unknown fields mixed in, lines ending with `eol`. */
const encode = (
  events: ReadonlyArray<{ readonly event: string | undefined; readonly data: ReadonlyArray<string> }>,
  eol: string,
  noise: boolean
): string =>
  events
    .map(
      ({ event, data }) =>
        (noise ? `: comment${eol}id: 7${eol}` : "") +
        (event === undefined ? "" : `event: ${event}${eol}`) +
        data
          .map((line, i) => (i % 2 === 0 || line.startsWith(" ") ? `data: ${line}${eol}` : `data:${line}${eol}`))
          .join("") +
        eol
    )
    .join("")

/** The bytes cut at the given (sorted, deduplicated) offsets. */
const chunks = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let start = 0
  for (const offset of [...offsets, bytes.length]) {
    out.push(bytes.subarray(start, offset))
    start = offset
  }
  return out
}

const decodeAll = (parts: ReadonlyArray<Uint8Array>): Array<SseMessage> => {
  const sse = decoder(limits)
  const out: Array<SseMessage> = []
  for (const part of parts) {
    const messages = sse.push(part)
    if (typeof messages === "string") throw new Error(`cap passed: ${messages}`)
    out.push(...messages)
  }
  return [...out, ...sse.end()]
}

describe("SSE decoder", () => {
  it("any chunking of a valid stream decodes to the events written, with LF, CR or CRLF line ends", () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 8 }),
        fc.constantFrom("\n", "\r", "\r\n"),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 40 }),
        (events, eol, noise, cuts) => {
          const bytes = new TextEncoder().encode(encode(events, eol, noise))
          const expected = events.map(({ event, data }) => ({ event, data: data.join("\n") }))
          expect(decodeAll(chunks(bytes, cuts))).toEqual(expected)
          // Byte by byte, every CRLF split between two chunks.
          expect(
            decodeAll(
              chunks(
                bytes,
                Array.from({ length: bytes.length }, (_, i) => i)
              )
            )
          ).toEqual(expected)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("an event without its blank line at the end of the body is dropped", () => {
    const sse = decoder(limits)
    expect(sse.push(new TextEncoder().encode("data: one\n\ndata: two\n"))).toEqual([{ event: undefined, data: "one" }])
    expect(sse.end()).toEqual([])
  })

  it("a chunk that passes a cap is refused whole: nothing of it is decoded", () => {
    const sse = decoder({ lineBytes: 8, eventBytes: 12 })
    expect(sse.push(new TextEncoder().encode("data: 1\n\ndata: 123"))).toBe("line")
    const events = decoder({ lineBytes: 8, eventBytes: 12 })
    expect(events.push(new TextEncoder().encode("data: 1\ndata: 2\n"))).toBe("event")
  })
})
