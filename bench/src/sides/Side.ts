/**
 * One side of the comparison: Tether, or a peer written as its own docs recommend, pointed at the fake model
 * server's URL. Every scenario drives each side through this shape, so they all do the same work.
 */

/** A streaming request in flight. */
export interface Live {
  /** Cancels it the side's own way (an `AbortSignal`, a fiber interrupt, a run's cancel). */
  readonly abort: () => void
  /** Settles once the request (or run) has ended, aborted or not. Called after `abort`, never before. */
  readonly settled: () => Promise<unknown>
}

/** A side connected to one model server. */
export interface Client {
  /** Starts one streaming request for "hi" and reads it to its end (or its abort). */
  readonly stream: () => Live
  /** Cancels every one of `lives` and waits until each has settled. Default: abort each, then await each. */
  readonly cancelAll?: ((lives: ReadonlyArray<Live>) => Promise<void>) | undefined
  /**
   * One agent run of two turns: the model calls the `echo` tool, the side runs it, the model answers. (Absent on
   * the bare transport, which only streams.)
   */
  readonly toolRun?: (() => Promise<unknown>) | undefined
  readonly close: () => Promise<void>
}

/** Which fetch a side's HTTP client uses: Node's own (undici), or the minimal one on `node:http`. */
export type Transport = "fetch" | "node:http"

export interface Side {
  /** A short key, used in results.json. */
  readonly key: string
  /** What a person reads in a table or chart. */
  readonly label: string
  readonly connect: (url: string) => Promise<Client>
}

/** Aborts each, then waits for each. */
export const cancelEach = async (lives: ReadonlyArray<Live>): Promise<void> => {
  for (const live of lives) live.abort()
  await Promise.all(lives.map((live) => live.settled()))
}
