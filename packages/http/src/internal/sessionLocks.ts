import { Effect } from "effect"

/**
 * One lock per session id, made when a start of the session arrives and dropped when no start of it holds or waits
 * for it: starts of one session take turns, starts of different sessions never wait on each other, and the map holds
 * only the sessions being started now.
 */
export interface SessionLocks {
  readonly withLock: (sessionId: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const make = (): SessionLocks => {
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return {
    withLock: (sessionId) => (effect) =>
      Effect.suspend(() => {
        let entry = locks.get(sessionId)
        if (entry === undefined) {
          entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          locks.set(sessionId, entry)
        }
        const lock = entry
        lock.users++
        return lock.semaphore
          .withPermits(1)(effect)
          .pipe(
            Effect.ensuring(
              Effect.sync(() => {
                if (--lock.users === 0) locks.delete(sessionId)
              })
            )
          )
      })
  }
}
