import type { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { StagedWrites } from "@tether/core"
import { Cause, Chunk, Effect, Exit, Option, Ref } from "effect"
import type { Schedule, Scope } from "effect"
import type { Dialect } from "./records.js"
import { lockRecordsTable, read } from "./records.js"
import * as Transient from "./transient.js"

/** @internal */
export interface Backend {
  readonly sql: SqlClient.SqlClient
  readonly dialect: Dialect
  readonly records: string
  /** When a commit that failed transiently (nothing applied) is attempted again. */
  readonly commitRetry: Schedule.Schedule<unknown, unknown>
  /** Runs inside the commit's transaction before the writes; its failure rolls the transaction back. */
  readonly beforeCommit: ((runId: string) => Effect.Effect<void, StagedWrites.CommitFencedError | SqlError>) | undefined
}

/**
 * A write as it will be applied: an upsert's value is encoded to JSON when it
 * is staged, so a later mutation of the object cannot change what commits and a
 * value that is not JSON fails the `stage` call, not the commit.
 */
type Prepared =
  | { readonly _tag: "Upsert"; readonly table: string; readonly key: string; readonly json: string }
  | { readonly _tag: "Delete"; readonly table: string; readonly key: string }
  | { readonly _tag: "Statement"; readonly sql: string; readonly params: ReadonlyArray<unknown> }
  | { readonly _tag: "Expect"; readonly write: StagedWrites.Expect }

type State =
  | { readonly _tag: "Open"; readonly writes: Chunk.Chunk<Prepared> }
  | { readonly _tag: "Committing"; readonly writes: Chunk.Chunk<Prepared> }
  | { readonly _tag: "Committed" }
  | { readonly _tag: "RolledBack" }
  /** The connection was lost at COMMIT: the writes may have landed, so nothing is left to discard or commit. */
  | { readonly _tag: "Unknown" }

const describePrepared = (write: Prepared): string => {
  switch (write._tag) {
    case "Upsert":
      return StagedWrites.describe(StagedWrites.upsert(write.table, write.key, null))
    case "Delete":
      return StagedWrites.describe(StagedWrites.remove(write.table, write.key))
    case "Statement":
      return StagedWrites.describe(StagedWrites.statement(write.sql, write.params))
    case "Expect":
      return StagedWrites.describe(write.write)
  }
}

/** A value's JSON text; a value without one fails the `stage` call. */
const toJson = (runId: string, write: StagedWrites.Write, value: unknown) =>
  Effect.try({
    try: () => JSON.stringify(value) as string | undefined,
    catch: (cause) => cause
  }).pipe(
    Effect.filterOrFail(
      (json): json is string => json !== undefined,
      () => "the value has no JSON form"
    ),
    Effect.mapError(
      (cause) =>
        new StagedWrites.StagedWriteError({
          operation: "stage",
          message: `run ${runId}: ${StagedWrites.describe(write)}: ${cause instanceof Error ? cause.message : String(cause)}`
        })
    )
  )

const prepare = (runId: string, write: StagedWrites.Write): Effect.Effect<Prepared, StagedWrites.StagedWriteError> => {
  switch (write._tag) {
    case "Upsert":
      return Effect.map(toJson(runId, write, write.value), (json): Prepared => ({
        _tag: "Upsert",
        table: write.table,
        key: write.key,
        json
      }))
    case "Delete":
      return Effect.succeed({ _tag: "Delete", table: write.table, key: write.key })
    case "Statement":
      return Effect.succeed({ _tag: "Statement", sql: write.sql, params: [...write.params] })
    case "Expect":
      // Compared as JSON at commit: a value without a JSON form could never match, and like an upsert's value it
      // is taken as it is now (a later change to the object does not change the expectation).
      return Option.match(write.expected, {
        onNone: () => Effect.succeed<Prepared>({ _tag: "Expect", write }),
        onSome: (value) =>
          Effect.map(toJson(runId, write, value), (json): Prepared => ({
            _tag: "Expect",
            write: new StagedWrites.Expect({
              table: write.table,
              key: write.key,
              expected: Option.some(JSON.parse(json))
            })
          }))
      })
  }
}

/**
 * Runs a statement as written. On SQLite it is prepared afresh: the client
 * caches a failed prepare for minutes (the same SQL would keep failing after
 * its cause, say a missing table, was fixed), and its unprepared path throws a
 * prepare error as a defect, which is turned back into a `SqlError` here.
 */
const runStatement = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  write: Extract<Prepared, { _tag: "Statement" }>
): Effect.Effect<unknown, SqlError> =>
  dialect === "sqlite"
    ? sql
        .unsafe(write.sql, write.params)
        .unprepared.pipe(
          Effect.catchAllDefect((defect) =>
            Effect.fail(new SqlError({ cause: defect, message: "Failed to prepare statement" }))
          )
        )
    : sql.unsafe(write.sql, write.params)

/**
 * Why the commit's transaction stopped: the database refused a write, an `Expect` was unmet, or `beforeCommit`
 * refused the run (`Fenced`).
 */
type WriteFailure =
  | { readonly _tag: "WriteFailed"; readonly write: string; readonly error: SqlError }
  | { readonly _tag: "Unmet"; readonly write: StagedWrites.Expect }
  | { readonly _tag: "Fenced"; readonly error: StagedWrites.CommitFencedError }

/** Applies one write; an `Expect` reads the record (inside the transaction, after the run's earlier writes). */
const apply = (
  backend: Backend,
  write: Prepared
): Effect.Effect<unknown, SqlError | Extract<WriteFailure, { _tag: "Unmet" }>> => {
  const { records, sql } = backend
  switch (write._tag) {
    case "Expect":
      return Effect.flatMap(read(sql, backend.dialect, records, write.write.table, write.write.key), (current) =>
        StagedWrites.meetsExpectation(write.write.expected, current)
          ? Effect.void
          : Effect.fail({ _tag: "Unmet" as const, write: write.write })
      )
    case "Upsert":
      return sql`INSERT INTO ${sql(records)} (table_name, key, value) VALUES (${write.table}, ${write.key}, ${write.json})
        ON CONFLICT (table_name, key) DO UPDATE SET value = excluded.value`
    case "Delete":
      return sql`DELETE FROM ${sql(records)} WHERE table_name = ${write.table} AND key = ${write.key}`
    case "Statement":
      return runStatement(sql, backend.dialect, write)
  }
}

/**
 * Every write in staged order, after the commit lock (PostgreSQL) and `beforeCommit`; the first failing one stops the
 * rest.
 */
const applyWrites = (
  backend: Backend,
  runId: string,
  writes: Chunk.Chunk<Prepared>
): Effect.Effect<void, WriteFailure> =>
  Effect.gen(function* () {
    if (backend.dialect === "pg") {
      yield* lockRecordsTable(backend.sql, backend.records).pipe(
        Effect.mapError((error): WriteFailure => ({ _tag: "WriteFailed", write: "the commit lock", error }))
      )
    }
    if (backend.beforeCommit !== undefined) {
      yield* backend
        .beforeCommit(runId)
        .pipe(
          Effect.mapError((error): WriteFailure =>
            error._tag === "CommitFencedError"
              ? { _tag: "Fenced", error }
              : { _tag: "WriteFailed", write: "the check before the commit", error }
          )
        )
    }
    for (const [index, write] of Chunk.toReadonlyArray(writes).entries()) {
      yield* apply(backend, write).pipe(
        Effect.mapError((error): WriteFailure =>
          error._tag === "Unmet"
            ? error
            : {
                _tag: "WriteFailed",
                write: `write ${index + 1} of ${Chunk.size(writes)} (${describePrepared(write)})`,
                error
              }
        )
      )
    }
  })

/**
 * Why one attempt at the commit's transaction failed. Before the COMMIT was sent the database applied nothing, so a
 * `Transient` failure (connection refused or lost, serialization failure) may run it again; once the COMMIT was sent,
 * a lost connection leaves its fate unknown (`CommitLost`), and a COMMIT the database answered with an error applied
 * nothing (`CommitRefused`).
 */
type AttemptFailure =
  | WriteFailure
  | { readonly _tag: "Transient"; readonly step: string; readonly error: SqlError }
  | { readonly _tag: "CommitRefused"; readonly error: SqlError }
  | { readonly _tag: "CommitLost"; readonly error: SqlError }

/**
 * What a failed attempt means. `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (`Die` of the
 * `SqlError`), so the defect is read here, knowing whether the body had finished (then the COMMIT was sent): a
 * `SqlError` never leaves the commit as a defect. Any other defect is a bug and stays one.
 */
const classify = (
  cause: Cause.Cause<WriteFailure | SqlError>,
  isCommitSent: boolean
): Effect.Effect<never, AttemptFailure> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error._tag === "Unmet" || error._tag === "Fenced") return Effect.fail(error)
    if (error._tag === "WriteFailed") {
      return Effect.fail(
        Transient.isTransient(error.error) ? { _tag: "Transient", step: error.write, error: error.error } : error
      )
    }
    return Effect.fail(
      Transient.isTransient(error)
        ? { _tag: "Transient", step: "the start of the transaction", error }
        : { _tag: "WriteFailed", write: "the start of the transaction", error }
    )
  }
  const defect = Cause.dieOption(cause)
  if (Option.isNone(defect) || !(defect.value instanceof SqlError)) return Effect.failCause(cause as Cause.Cause<never>)
  const error = defect.value
  if (isCommitSent) {
    if (Transient.isConnectionLost(error)) return Effect.fail({ _tag: "CommitLost", error })
    return Effect.fail(
      Transient.isTransient(error) ? { _tag: "Transient", step: "the COMMIT", error } : { _tag: "CommitRefused", error }
    )
  }
  // The ROLLBACK after a failed write failed too (the connection is gone): the transaction never committed.
  return Effect.fail(
    Transient.isTransient(error)
      ? { _tag: "Transient", step: "the transaction", error }
      : { _tag: "WriteFailed", write: "the rollback", error }
  )
}

/** One attempt: every write in one database transaction. The first failing write aborts it and nothing lands. */
const attempt = (backend: Backend, runId: string, writes: Chunk.Chunk<Prepared>): Effect.Effect<void, AttemptFailure> =>
  Effect.suspend(() => {
    let isCommitSent = false
    return backend.sql
      .withTransaction(
        Effect.zipRight(
          applyWrites(backend, runId, writes),
          Effect.sync(() => void (isCommitSent = true))
        )
      )
      .pipe(Effect.catchAllCause((cause) => classify(cause, isCommitSent)))
  })

/**
 * Applies every write in one database transaction, attempting it again after a transient failure (as
 * `backend.commitRetry` allows). Fails with `CommitOutcomeUnknownError` when the connection was lost after the
 * COMMIT was sent; every other failure applied nothing.
 */
const applyAll = (
  backend: Backend,
  runId: string,
  writes: Chunk.Chunk<Prepared>
): Effect.Effect<
  void,
  | StagedWrites.StagedWriteError
  | StagedWrites.WriteConflictError
  | StagedWrites.CommitOutcomeUnknownError
  | StagedWrites.CommitFencedError
> =>
  Effect.suspend(() => {
    let attempts = 0
    const once = Effect.suspend(() => {
      attempts++
      return attempt(backend, runId, writes)
    })
    return once.pipe(
      Effect.retry({ schedule: backend.commitRetry, while: (failure) => failure._tag === "Transient" }),
      Effect.mapError((failure) => {
        const tries = attempts === 1 ? "" : ` (${attempts} attempts)`
        switch (failure._tag) {
          case "Unmet":
            return StagedWrites.conflict(runId, failure.write)
          case "Fenced":
            return failure.error
          case "WriteFailed":
            return new StagedWrites.StagedWriteError({
              operation: "commit",
              message: `run ${runId}: ${failure.write} failed, nothing was applied: ${Transient.describe(failure.error)}`
            })
          case "Transient":
            return new StagedWrites.StagedWriteError({
              operation: "commit",
              message: `run ${runId}: the database failed at ${failure.step}${tries}, nothing was applied: ${Transient.describe(failure.error)}`
            })
          case "CommitRefused":
            return new StagedWrites.StagedWriteError({
              operation: "commit",
              message: `run ${runId}: the database refused the COMMIT, nothing was applied: ${Transient.describe(failure.error)}`
            })
          case "CommitLost":
            return new StagedWrites.CommitOutcomeUnknownError({
              writes: Chunk.size(writes),
              message: `run ${runId}: the connection was lost after the COMMIT was sent (${Transient.describe(failure.error)}); its ${Chunk.size(writes)} writes may or may not have been applied`
            })
        }
      })
    )
  })

const alreadyCommitting = (runId: string, operation: "stage" | "commit" | "rollback") =>
  new StagedWrites.StagedWriteError({ operation, message: `run ${runId}: a commit of this transaction is under way` })

/** Staging into a transaction that ended fails: a write must never be dropped without a word. */
const notOpen = (runId: string, state: Exclude<State, { _tag: "Open" }>, write: StagedWrites.Write) => {
  if (state._tag === "Committing") return alreadyCommitting(runId, "stage")
  const ended =
    state._tag === "Committed" ? "committed" : state._tag === "RolledBack" ? "rolled back" : "ended (outcome unknown)"
  return new StagedWrites.StagedWriteError({
    operation: "stage",
    message: `run ${runId}: the transaction is already ${ended}, ${StagedWrites.describe(write)} was not staged`
  })
}

/**
 * Opens the staging area of one run. Nothing touches the database until
 * `commit`; closing the scope without a commit discards the writes.
 *
 * @internal
 */
export const begin = (backend: Backend, runId: string): Effect.Effect<StagedWrites.Transaction, never, Scope.Scope> =>
  Effect.gen(function* () {
    const state = yield* Ref.make<State>({ _tag: "Open", writes: Chunk.empty() })

    const discard = Ref.modify(state, (current): [number | "committing", State] => {
      switch (current._tag) {
        case "Open":
          return [Chunk.size(current.writes), { _tag: "RolledBack" }]
        case "Committing":
          return ["committing", current]
        case "Committed":
        case "RolledBack":
        case "Unknown":
          return [0, current]
      }
    })

    yield* Effect.addFinalizer(() => discard)

    const stage = (write: StagedWrites.Write) =>
      Effect.flatMap(prepare(runId, write), (prepared) =>
        Ref.modify(state, (current): [StagedWrites.StagedWriteError | undefined, State] =>
          current._tag === "Open"
            ? [undefined, { _tag: "Open", writes: Chunk.append(current.writes, prepared) }]
            : [notOpen(runId, current, write), current]
        ).pipe(Effect.flatMap((error) => (error === undefined ? Effect.void : Effect.fail(error))))
      )

    const commit = Effect.uninterruptible(
      Effect.gen(function* () {
        const taken = yield* Ref.modify(state, (current): [Chunk.Chunk<Prepared> | "committing" | "unknown", State] => {
          switch (current._tag) {
            case "Open":
              return [current.writes, { _tag: "Committing", writes: current.writes }]
            case "Committing":
              return ["committing", current]
            case "Unknown":
              return ["unknown", current]
            case "Committed":
            case "RolledBack":
              return [Chunk.empty(), current]
          }
        })
        if (taken === "committing") return yield* Effect.fail(alreadyCommitting(runId, "commit"))
        if (taken === "unknown") {
          return yield* new StagedWrites.StagedWriteError({
            operation: "commit",
            message: `run ${runId}: an earlier commit of this transaction lost its connection; its outcome is unknown`
          })
        }
        if (Chunk.isEmpty(taken)) {
          yield* Ref.update(state, (current): State =>
            current._tag === "Committing" ? { _tag: "Committed" } : current
          )
          return 0
        }
        // On failure the writes stay staged (the run may retry the commit or roll back), unless the commit's
        // outcome is unknown: then they may have landed, and a rollback must not report them as discarded.
        yield* applyAll(backend, runId, taken).pipe(
          Effect.onExit((exit) =>
            Ref.set<State>(
              state,
              Exit.isSuccess(exit)
                ? { _tag: "Committed" }
                : Exit.causeOption(exit).pipe(
                      Option.flatMap(Cause.failureOption),
                      Option.exists((error) => error._tag === "CommitOutcomeUnknownError")
                    )
                  ? { _tag: "Unknown" }
                  : { _tag: "Open", writes: taken }
            )
          )
        )
        return Chunk.size(taken)
      }).pipe(Effect.withSpan("SqlStagedWrites.commit", { attributes: { runId } }))
    )

    const rollback = Effect.flatMap(discard, (discarded) =>
      discarded === "committing" ? Effect.fail(alreadyCommitting(runId, "rollback")) : Effect.succeed(discarded)
    )

    const transaction: StagedWrites.Transaction = { stage, commit, rollback }
    return transaction
  })
