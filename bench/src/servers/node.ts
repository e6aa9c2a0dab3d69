/**
 * The raw SDK, Vercel `ai` and LangChain behind a plain `node:http` server, each as its docs show a streamed
 * answer; each handler aborts its model request when the response closes before it ended (`res.on("close")`), the
 * way to stop a stream when the client goes away.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as langchain from "../sides/langchain.js"
import * as raw from "../sides/raw.js"
import * as vercel from "../sides/vercel.js"
import { maxTokens, model, prompt } from "../sides/common.js"
import { chatRequest, sseFrame, type AppServer, type Served } from "./Served.js"
import { streamText } from "ai"

type Handler = (response: http.ServerResponse, signal: AbortSignal) => Promise<void>

const sseHead = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" }

const listen = (handle: Handler) =>
  new Promise<AppServer>((resolve) => {
    const server = http.createServer((request, response) => {
      const controller = new AbortController()
      response.once("close", () => controller.abort())
      request.resume()
      handle(response, controller.signal).catch(() => response.destroy())
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        request: () => chatRequest,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    )
  })

/** Writes each event as a frame; an abort ends the loop (the SDK's stream ends quietly). */
const forward = async (response: http.ServerResponse, events: AsyncIterable<unknown>) => {
  response.writeHead(200, sseHead)
  for await (const event of events) response.write(sseFrame(event))
  response.end()
}

export const rawBehindNode: Served = {
  key: "rawNode",
  label: "raw SDK, node:http",
  serve: async (url) => {
    const anthropic = raw.client(url)
    return listen(async (response, signal) => forward(response, await raw.events(anthropic, signal)))
  }
}

export const langchainBehindNode: Served = {
  key: "langchainNode",
  label: "LangChain, node:http",
  serve: async (url) => {
    const chat = langchain.chatModel(url)
    return listen(async (response, signal) => {
      const chunks = await chat.stream(prompt, { signal })
      response.writeHead(200, sseHead)
      for await (const chunk of chunks) response.write(sseFrame(chunk.content))
      response.end()
    })
  }
}

export const vercelBehindNode: Served = {
  key: "vercelNode",
  label: "Vercel ai, node:http",
  serve: async (url) => {
    const anthropic = vercel.provider(url)
    return listen((response, signal) =>
      streamText({
        model: anthropic(model),
        maxOutputTokens: maxTokens,
        maxRetries: 0,
        prompt,
        abortSignal: signal
      }).pipeUIMessageStreamToResponse(response)
    )
  }
}
