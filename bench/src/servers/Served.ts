/**
 * A side behind its idiomatic HTTP server, for the disconnect scenario: a client POSTs a chat message, reads the
 * streamed answer, and drops the connection; the fake model server notes when the model's socket closed.
 */

/** What the client sends to start a streaming answer. */
export interface ChatRequest {
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface AppServer {
  readonly port: number
  /** The request of the `n`th trial (a fresh session id each time, where the server has sessions). */
  readonly request: (n: number) => ChatRequest
  readonly close: () => Promise<void>
}

export interface Served {
  readonly key: string
  readonly label: string
  readonly serve: (modelUrl: string) => Promise<AppServer>
}

export const chatRequest: ChatRequest = {
  path: "/chat",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ message: "hi" })
}

/** A Server-Sent Events frame of `data`. */
export const sseFrame = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`
