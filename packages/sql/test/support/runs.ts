import { StagedWrites } from "@tether/core"
import { Effect, Exit } from "effect"
import type { Scope } from "effect"

/** Opens a run's transaction on the `StagedWrites` in context. */
export const begin = (runId: string) => Effect.flatMap(StagedWrites.StagedWrites, (staged) => staged.begin(runId))

/**
 * Runs `body` the way core runs an agent: `begin` in the run's scope before
 * anything else, `Effect.uninterruptible(tx.commit)` once the body succeeded,
 * `tx.rollback` when it failed or was interrupted.
 */
export const runLikeCore = <A, E, R>(
  runId: string,
  body: (tx: StagedWrites.Transaction) => Effect.Effect<A, E, R>
): Effect.Effect<
  number,
  | E
  | StagedWrites.StagedWriteError
  | StagedWrites.WriteConflictError
  | StagedWrites.CommitOutcomeUnknownError
  | StagedWrites.CommitFencedError,
  StagedWrites.StagedWrites | Exclude<R, Scope.Scope>
> =>
  Effect.scoped(
    Effect.gen(function* () {
      const staged = yield* StagedWrites.StagedWrites
      const tx = yield* staged.begin(runId)
      yield* body(tx).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.orDie(tx.rollback))))
      return yield* Effect.uninterruptible(tx.commit)
    })
  )

/** Yields to the scheduler `times` times, letting other fibers run. */
export const yieldTimes = (times: number): Effect.Effect<void> =>
  times <= 0
    ? Effect.void
    : Effect.zipRight(
        Effect.yieldNow(),
        Effect.suspend(() => yieldTimes(times - 1))
      )
