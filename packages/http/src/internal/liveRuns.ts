import type { SessionStore } from "@tether/core"
import { TooManyRuns } from "../RouteError.js"

/** One run counted against its caller and its client address, from its admission until it ends. */
export interface Reservation {
  readonly caller: SessionStore.CallerId
  readonly sessionId: string
  readonly address: string | undefined
}

/**
 * The runs each caller and each client address has going, counted in memory as runs are admitted and end, never by
 * reading sessions. A check and its reservation are one synchronous step, so of two concurrent starts past a limit
 * exactly one is admitted. A session's own runs do not count against its next start (a superseded run is ending).
 */
export interface LiveRuns {
  readonly reserve: (
    reservation: Reservation,
    limits: { readonly perCaller: number; readonly perAddress: number }
  ) => TooManyRuns | (() => void)
}

const others = (set: Set<Reservation> | undefined, sessionId: string) => {
  let count = 0
  if (set !== undefined) for (const reservation of set) if (reservation.sessionId !== sessionId) count++
  return count
}

const add = <K>(map: Map<K, Set<Reservation>>, key: K, reservation: Reservation) => {
  const set = map.get(key)
  if (set === undefined) map.set(key, new Set([reservation]))
  else set.add(reservation)
}

const remove = <K>(map: Map<K, Set<Reservation>>, key: K, reservation: Reservation) => {
  const set = map.get(key)
  set?.delete(reservation)
  if (set?.size === 0) map.delete(key)
}

export const make = (): LiveRuns => {
  const byCaller = new Map<SessionStore.CallerId, Set<Reservation>>()
  const byAddress = new Map<string, Set<Reservation>>()
  return {
    reserve: (reservation, limits) => {
      if (others(byCaller.get(reservation.caller), reservation.sessionId) >= limits.perCaller) {
        return new TooManyRuns({
          limit: limits.perCaller,
          message: `at most ${limits.perCaller} runs may go at once per caller`
        })
      }
      const address = reservation.address
      if (address !== undefined && others(byAddress.get(address), reservation.sessionId) >= limits.perAddress) {
        return new TooManyRuns({
          limit: limits.perAddress,
          message: `at most ${limits.perAddress} runs may go at once from one client address`
        })
      }
      add(byCaller, reservation.caller, reservation)
      if (address !== undefined) add(byAddress, address, reservation)
      let isDropped = false
      return () => {
        if (isDropped) return
        isDropped = true
        remove(byCaller, reservation.caller, reservation)
        if (address !== undefined) remove(byAddress, address, reservation)
      }
    }
  }
}
