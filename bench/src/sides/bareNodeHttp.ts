/**
 * No SDK at all: one `node:http` request to the model, its body read and dropped, cancelled by its `AbortSignal`.
 * The heap of the transport alone, for the scale scenario's "own state" figures.
 */
import * as http from "node:http"
import { maxTokens, model, prompt } from "./common.js"
import type { Client, Side } from "./Side.js"

const agent = new http.Agent({ keepAlive: true })

const body = JSON.stringify({
  model,
  max_tokens: maxTokens,
  stream: true,
  messages: [{ role: "user", content: prompt }]
})

const streamOnce = (url: URL, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const request = http.request(url, {
      method: "POST",
      agent,
      signal,
      headers: { "content-type": "application/json", "x-api-key": "bench", "anthropic-version": "2023-06-01" }
    })
    request.once("response", (response) => {
      response.on("data", () => {})
      response.once("close", () => resolve())
    })
    request.once("error", () => resolve())
    request.end(body)
  })

export const side: Side = {
  key: "bareNodeHttp",
  label: "bare node:http request",
  connect: async (url): Promise<Client> => {
    const endpoint = new URL("/v1/messages", url)
    return {
      stream: () => {
        const controller = new AbortController()
        const done = streamOnce(endpoint, controller.signal)
        return { abort: () => controller.abort(), settled: () => done }
      },
      close: async () => {}
    }
  }
}
