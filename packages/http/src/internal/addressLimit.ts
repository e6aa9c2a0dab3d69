import { TooManyRuns } from "../RouteError.js"

/**
 * Which client address started each running session's run, to cap the runs of one address: the per-caller limit
 * alone is only as strong as minting callers is hard (a page that hands every visitor a new identity lets one
 * client be many callers). Entries of sessions no longer running are dropped at each check, so it holds about as
 * many entries as there are runs going. Not synchronized: the caller checks and records under its start lock.
 */
export interface RunsByAddress {
  /** `TooManyRuns` when `address` already has `limit` runs going in sessions other than `sessionId`. */
  readonly check: (
    address: string,
    sessionId: string,
    runningSessions: ReadonlyArray<string>
  ) => TooManyRuns | undefined
  /** Notes that `address` started the run of `sessionId`. */
  readonly record: (address: string, sessionId: string) => void
}

export const make = (limit: number): RunsByAddress => {
  const addressOf = new Map<string, string>()
  return {
    check: (address, sessionId, runningSessions) => {
      const running = new Set(runningSessions)
      let count = 0
      for (const [session, from] of addressOf) {
        if (!running.has(session)) addressOf.delete(session)
        else if (from === address && session !== sessionId) count++
      }
      return count < limit
        ? undefined
        : new TooManyRuns({ limit, message: `at most ${limit} runs may go at once from one client address` })
    },
    record: (address, sessionId) => void addressOf.set(sessionId, address)
  }
}
