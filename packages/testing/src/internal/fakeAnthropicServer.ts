import * as Http from "node:http"
import type { Socket } from "node:net"
import { performance } from "node:perf_hooks"
import { Either } from "effect"
import type { RecordedRequest, State } from "../FakeAnthropic.js"
import type { Fault, Reply, Script, ScriptRequest, StreamReply } from "./fakeAnthropicScript.js"
import { encodeEvent, errorBody, jsonMessage, streamSteps, tokenCount } from "./fakeAnthropicStream.js"
import { parseWireRequest } from "./fakeAnthropicWire.js"

type Mutable<A> = { -readonly [K in keyof A]: A[K] }
type RequestRecord = Mutable<Omit<RecordedRequest, "tokenTimes">> & { readonly tokenTimes: Array<number> }

/** Resolves after `millis`, or at once when `signal` aborts. Never rejects. */
const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (millis <= 0 || signal.aborted) return resolve()
    const onAbort = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, millis)
    signal.addEventListener("abort", onAbort, { once: true })
  })

/** Resolves when `signal` aborts (the client closed the connection, or the server is closing). */
const untilAborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    signal.addEventListener("abort", () => resolve(), { once: true })
  })

/** Resolves when `response` can take more (`drain`) or `signal` aborts. Never rejects. */
const drained = (response: Http.ServerResponse, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      response.off("drain", done)
      signal.removeEventListener("abort", done)
      resolve()
    }
    response.on("drain", done)
    signal.addEventListener("abort", done, { once: true })
  })

const readBody = async (request: Http.IncomingMessage): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

const missingReply = (index: number, why: string): Reply => ({
  _tag: "HttpError",
  status: 400,
  errorType: "invalid_request_error",
  message: `FakeAnthropic: ${why} for request #${index}`,
  headers: {},
  firstByteDelay: 0
})

const pickReply = (script: Script, request: ScriptRequest): Reply => {
  if (typeof script !== "function")
    return script[request.index] ?? missingReply(request.index, "the script has no reply")
  try {
    return script(request)
  } catch (error) {
    return missingReply(request.index, `the script threw ${String(error)}`)
  }
}

/** The node:http server behind `FakeAnthropic`: serves the script and records every request. */
const copyRecord = (record: RecordedRequest): RecordedRequest => ({ ...record, tokenTimes: [...record.tokenTimes] })

export class FakeServer {
  readonly url: string
  private readonly records: Array<RequestRecord> = []
  /** Records dropped from the front of `records` (see `keepRequests`). */
  private dropped = 0
  private readonly sockets = new Set<Socket>()
  private readonly listeners = new Set<() => void>()
  private readonly responses = new Set<AbortController>()
  private isClosed = false

  private constructor(
    private readonly server: Http.Server,
    private readonly script: Script,
    private readonly keepRequests: number
  ) {
    const address = server.address()
    this.url = typeof address === "object" && address !== null ? `http://127.0.0.1:${address.port}` : ""
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket)
      socket.on("close", () => {
        this.sockets.delete(socket)
        this.notify()
      })
      this.notify()
    })
    server.on("request", (request: Http.IncomingMessage, response: Http.ServerResponse) =>
      this.handle(request, response)
    )
    server.on("clientError", (_error, socket) => socket.destroy())
  }

  /** `keepRequests`: how many records to keep, the latest (default all of them). */
  static start(script: Script, keepRequests = Number.POSITIVE_INFINITY): Promise<FakeServer> {
    const server = Http.createServer({ noDelay: true, keepAliveTimeout: 5_000 })
    return new Promise((resolve, reject) => {
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject)
        resolve(new FakeServer(server, script, keepRequests))
      })
    })
  }

  get openConnections(): number {
    return this.sockets.size
  }

  get inFlight(): number {
    return this.responses.size
  }

  get requests(): ReadonlyArray<RecordedRequest> {
    return this.records.map(copyRecord)
  }

  /** Every request received, kept or not. */
  get requestCount(): number {
    return this.dropped + this.records.length
  }

  /** Cheap to make: waits re-evaluate it on every change, and copying every record each time is quadratic. */
  state(): State {
    const records = this.records
    const dropped = this.dropped
    return {
      get requests() {
        return records.map(copyRecord)
      },
      requestCount: dropped + records.length,
      request: (index) => {
        const record = records[index - dropped]
        return record === undefined ? undefined : copyRecord(record)
      },
      openConnections: this.openConnections,
      inFlight: this.inFlight
    }
  }

  /** Calls `listener` after every change of state; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Stops listening, ends every response and destroys every socket. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve()
    this.isClosed = true
    for (const response of this.responses) response.abort()
    for (const socket of this.sockets) socket.destroy()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }

  private notify() {
    for (const listener of [...this.listeners]) listener()
  }

  private handle(request: Http.IncomingMessage, response: Http.ServerResponse) {
    const startedAt = performance.now()
    const lifetime = new AbortController()
    this.responses.add(lifetime)
    response.on("error", () => {})
    readBody(request)
      .then(
        (rawBody) => {
          if (lifetime.signal.aborted) return
          const record = this.record(request, response, rawBody, startedAt, lifetime)
          return this.serve(request, response, record, lifetime.signal)
        },
        () => lifetime.abort()
      )
      .catch(() => response.destroy())
    response.on("close", () => {
      lifetime.abort()
      this.responses.delete(lifetime)
      this.notify()
    })
  }

  private record(
    request: Http.IncomingMessage,
    response: Http.ServerResponse,
    rawBody: string,
    startedAt: number,
    lifetime: AbortController
  ): RequestRecord {
    const decoded = parseWireRequest(rawBody)
    const record: RequestRecord = {
      index: this.requestCount,
      method: request.method ?? "",
      path: request.url ?? "",
      headers: request.headers,
      rawBody,
      request: Either.getOrUndefined(decoded),
      issue: Either.isLeft(decoded) ? decoded.left : undefined,
      isStream: Either.isRight(decoded) && decoded.right.stream === true,
      startedAt,
      status: undefined,
      closedAt: undefined,
      finishedAt: undefined,
      isFinished: false,
      isResetByServer: false,
      tokensWritten: 0,
      tokenTimes: [],
      pingsWritten: 0,
      bytesWritten: 0
    }
    this.records.push(record)
    // (A dropped record may still be serving: it is only no longer visible.)
    while (this.records.length > this.keepRequests) {
      this.records.shift()
      this.dropped++
    }
    response.on("finish", () => {
      record.isFinished = true
      record.finishedAt = performance.now()
      this.notify()
    })
    response.on("close", () => {
      if (!record.isFinished) record.closedAt = performance.now()
      lifetime.abort()
      this.notify()
    })
    this.notify()
    return record
  }

  private async serve(
    request: Http.IncomingMessage,
    response: Http.ServerResponse,
    record: RequestRecord,
    signal: AbortSignal
  ): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake")
    if (request.method !== "POST" || url.pathname !== "/v1/messages") {
      return this.sendError(response, record, 404, "not_found_error", `Not found: ${request.method} ${url.pathname}`)
    }
    if (request.headers["x-api-key"] === undefined && request.headers.authorization === undefined) {
      return this.sendError(response, record, 401, "authentication_error", "x-api-key header is required")
    }
    if (record.request === undefined) {
      return this.sendError(response, record, 400, "invalid_request_error", record.issue ?? "invalid request")
    }
    const reply = pickReply(this.script, { index: record.index, body: record.request, headers: request.headers })
    switch (reply._tag) {
      case "Hang":
        return
      case "Reset":
        await sleep(reply.afterMillis, signal)
        if (signal.aborted) return
        record.isResetByServer = true
        request.socket.destroy()
        return
      case "HttpError":
        await sleep(reply.firstByteDelay, signal)
        if (signal.aborted) return
        return this.sendError(response, record, reply.status, reply.errorType, reply.message, reply.headers)
      case "Raw":
        await sleep(reply.firstByteDelay, signal)
        if (signal.aborted) return
        record.status = reply.status
        response.writeHead(reply.status, { "request-id": `req_fake_${record.index}`, ...reply.headers })
        response.end(reply.body)
        return
      case "Stream": {
        const inputTokens = reply.inputTokens ?? Math.ceil(record.rawBody.length / 4)
        return record.isStream
          ? this.writeStream(response, record, reply, inputTokens, signal)
          : this.writeJson(response, record, reply, inputTokens, signal)
      }
    }
  }

  private sendError(
    response: Http.ServerResponse,
    record: RequestRecord,
    status: number,
    errorType: string,
    message: string,
    headers: Readonly<Record<string, string>> = {}
  ) {
    const requestId = `req_fake_${record.index}`
    record.status = status
    response.writeHead(status, { "content-type": "application/json", "request-id": requestId, ...headers })
    response.end(JSON.stringify(errorBody(errorType, message, requestId)))
  }

  private wroteToken(record: RequestRecord) {
    record.tokensWritten++
    record.tokenTimes.push(performance.now())
    this.notify()
  }

  private async writeStream(
    response: Http.ServerResponse,
    record: RequestRecord,
    reply: StreamReply,
    inputTokens: number,
    signal: AbortSignal
  ): Promise<void> {
    await sleep(reply.firstByteDelay, signal)
    if (signal.aborted) return
    record.status = 200
    response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "request-id": `req_fake_${record.index}`
    })
    response.flushHeaders()
    if (reply.fault?.afterHeaders === true) return this.fault(response, record, reply.fault, signal)
    for (const step of streamSteps(reply, `msg_fake_${record.index}`, inputTokens)) {
      const slot = step._tag === "Token" ? step.index : step.isFinal ? tokenCount(reply) : undefined
      if (slot !== undefined) {
        await sleep((slot > 0 && step._tag === "Token" ? reply.interval : 0) + (reply.stalls[slot] ?? 0), signal)
        if (signal.aborted) return
        // A fault past the last token happens at the end, before message_delta.
        if (reply.fault !== undefined && (slot >= reply.fault.afterTokens || step._tag === "Event")) {
          return this.fault(response, record, reply.fault, signal)
        }
      }
      if (signal.aborted) return
      if (step._tag === "Token") {
        this.write(response, record, encodeEvent("content_block_delta", step.data))
        this.wroteToken(record)
      } else {
        this.write(response, record, encodeEvent(step.event, step.data))
      }
    }
    response.end()
  }

  /** Writes part of a streamed body, counting its bytes; false when the socket's buffer is full. */
  private write(response: Http.ServerResponse, record: RequestRecord, chunk: string): boolean {
    record.bytesWritten += Buffer.byteLength(chunk)
    return response.write(chunk)
  }

  /** Writes `bytes` bytes made of `piece` repeated, only as fast as the client reads them. */
  private async writeAsRead(
    response: Http.ServerResponse,
    record: RequestRecord,
    bytes: number,
    piece: string,
    signal: AbortSignal
  ): Promise<void> {
    for (let written = 0; written < bytes && !signal.aborted; written += piece.length) {
      const chunk = written + piece.length <= bytes ? piece : piece.slice(0, bytes - written)
      if (!this.write(response, record, chunk)) await drained(response, signal)
    }
  }

  private async fault(response: Http.ServerResponse, record: RequestRecord, fault: Fault, signal: AbortSignal) {
    switch (fault.kind) {
      case "silent":
        return untilAborted(signal)
      case "pings":
        while (!signal.aborted) {
          this.write(response, record, encodeEvent("ping", { type: "ping" }))
          record.pingsWritten++
          this.notify()
          await sleep(fault.pingInterval ?? 1000, signal)
        }
        return
      case "oversized-line":
        this.write(
          response,
          record,
          'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        )
        await this.writeAsRead(response, record, fault.bytes ?? 40 * 1024 * 1024, "x".repeat(64 * 1024), signal)
        if (!signal.aborted) response.end()
        return
      case "oversized-event":
        this.write(response, record, "event: content_block_delta\n")
        await this.writeAsRead(response, record, fault.bytes ?? 40 * 1024 * 1024, `data: ${"x".repeat(1017)}\n`, signal)
        if (!signal.aborted) response.end("\n")
        return
      case "reset":
        record.isResetByServer = true
        response.socket?.destroy()
        return
      case "end-early":
        response.end()
        return
      case "garbage":
        response.end(encodeEvent("content_block_delta", "this is not JSON"))
        return
      case "truncated-json":
        response.end('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n')
        return
      case "unexpected-shape":
        response.end(encodeEvent("content_block_delta", { type: "content_block_delta", index: "first" }))
        return
      case "error-event":
        response.end(
          encodeEvent(
            "error",
            errorBody(fault.errorType ?? "overloaded_error", fault.message ?? "Overloaded", `req_fake_${record.index}`)
          )
        )
        return
    }
  }

  private async writeJson(
    response: Http.ServerResponse,
    record: RequestRecord,
    reply: StreamReply,
    inputTokens: number,
    signal: AbortSignal
  ): Promise<void> {
    const count = tokenCount(reply)
    const stalls = Object.values(reply.stalls).reduce((sum, millis) => sum + millis, 0)
    await sleep(reply.firstByteDelay + Math.max(0, count - 1) * reply.interval + stalls, signal)
    if (signal.aborted) return
    const fault = reply.fault?.kind
    if (fault === "reset") {
      record.isResetByServer = true
      response.socket?.destroy()
      return
    }
    record.status = 200
    response.writeHead(200, { "content-type": "application/json", "request-id": `req_fake_${record.index}` })
    if (fault === "garbage" || fault === "truncated-json") {
      response.end(fault === "garbage" ? "<html>this is not JSON" : '{"id":"msg_fake","type":"mess')
      return
    }
    for (let i = 0; i < count; i++) this.wroteToken(record)
    response.end(JSON.stringify(jsonMessage(reply, `msg_fake_${record.index}`, inputTokens)))
  }
}
