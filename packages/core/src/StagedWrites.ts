/**
 * Writes a run makes are staged and committed only when the run succeeds. On
 * failure or interruption they are rolled back. A commit is atomic: all of a
 * run's writes land, or none.
 *
 * Core holds the interface and an in-memory layer; `@tether/sql` backs it with
 * SQLite or PostgreSQL.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StagedWrites } from "@tether/core"
 *
 * const program = Effect.gen(function* () {
 *   const store = yield* StagedWrites.MemoryStore
 *   // ... run agents whose tools call AgentRun.stage(StagedWrites.upsert("orders", "o-1", { total: 3 }))
 *   return yield* store.snapshot
 * }).pipe(Effect.provide(StagedWrites.layerMemory))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Ref, Schema } from "effect"
import type { Scope } from "effect"

/** Set `table[key]` to `value` (JSON). @since 0.1.0 */
export class Upsert extends Schema.TaggedClass<Upsert>()("Upsert", {
  table: Schema.String,
  key: Schema.String,
  value: Schema.Unknown
}) {}

/** Remove `table[key]`. @since 0.1.0 */
export class Delete extends Schema.TaggedClass<Delete>()("Delete", { table: Schema.String, key: Schema.String }) {}

/** A SQL statement with positional parameters (SQL backends only). @since 0.1.0 */
export class Statement extends Schema.TaggedClass<Statement>()("Statement", {
  sql: Schema.String,
  params: Schema.Array(Schema.Unknown)
}) {}

/** @since 0.1.0 */
export const Write = Schema.Union(Upsert, Delete, Statement)
/** @since 0.1.0 */
export type Write = typeof Write.Type

/** @since 0.1.0 */
export const upsert = (table: string, key: string, value: unknown): Write => new Upsert({ table, key, value })
/** @since 0.1.0 */
export const remove = (table: string, key: string): Write => new Delete({ table, key })
/** @since 0.1.0 */
export const statement = (sql: string, params: ReadonlyArray<unknown> = []): Write => new Statement({ sql, params })

/** A one-line description of a write, for events and logs. @since 0.1.0 */
export const describe = (write: Write): string => {
  switch (write._tag) {
    case "Upsert":
      return `upsert ${write.table}/${write.key}`
    case "Delete":
      return `delete ${write.table}/${write.key}`
    case "Statement":
      return write.sql.length > 80 ? `${write.sql.slice(0, 77)}...` : write.sql
  }
}

/** A write could not be staged, committed or rolled back. @since 0.1.0 */
export class StagedWriteError extends Schema.TaggedError<StagedWriteError>()("StagedWriteError", {
  operation: Schema.Literal("begin", "stage", "commit", "rollback"),
  message: Schema.String
}) {}

/**
 * The writes of one run. The run calls `commit` once, uninterruptibly, after
 * every child of the run has ended; if it never does, the scope that `begin`
 * ran in rolls the writes back when it closes.
 *
 * @since 0.1.0
 */
export interface Transaction {
  readonly stage: (write: Write) => Effect.Effect<void, StagedWriteError>
  /** Applies every staged write atomically; returns how many were applied. */
  readonly commit: Effect.Effect<number, StagedWriteError>
  /** Discards every staged write; returns how many were discarded. */
  readonly rollback: Effect.Effect<number, StagedWriteError>
}

/** @since 0.1.0 */
export interface Service {
  readonly begin: (runId: string) => Effect.Effect<Transaction, StagedWriteError, Scope.Scope>
}

/** @since 0.1.0 */
export class StagedWrites extends Context.Tag("@tether/core/StagedWrites")<StagedWrites, Service>() {}

/** The committed contents of the in-memory store: table -> key -> value. @since 0.1.0 */
export type Snapshot = ReadonlyMap<string, ReadonlyMap<string, unknown>>

/** Read access to what the in-memory layer committed. @since 0.1.0 */
export class MemoryStore extends Context.Tag("@tether/core/StagedWrites/MemoryStore")<
  MemoryStore,
  { readonly snapshot: Effect.Effect<Snapshot>; readonly commits: Effect.Effect<number> }
>() {}

const applyWrite = (tables: Map<string, Map<string, unknown>>, write: Upsert | Delete): void => {
  const table = tables.get(write.table) ?? new Map<string, unknown>()
  tables.set(write.table, table)
  if (write._tag === "Upsert") table.set(write.key, write.value)
  else table.delete(write.key)
}

const makeMemory = Effect.gen(function* () {
  const committed = yield* Ref.make<Snapshot>(new Map())
  const commitCount = yield* Ref.make(0)
  const service: Service = {
    begin: () =>
      Effect.gen(function* () {
        // `undefined` once the transaction ended: a late write (from work that ignored the cancel) is refused.
        const staged = yield* Ref.make<ReadonlyArray<Upsert | Delete> | undefined>([])
        const discard = Ref.getAndSet(staged, undefined).pipe(Effect.map((writes) => writes?.length ?? 0))
        yield* Effect.addFinalizer(() => discard)
        const ended = (operation: "stage" | "commit") =>
          new StagedWriteError({ operation, message: "the run's transaction has already ended" })
        const transaction: Transaction = {
          stage: (write) =>
            write._tag === "Statement"
              ? Effect.fail(
                  new StagedWriteError({ operation: "stage", message: "the in-memory store cannot run SQL statements" })
                )
              : Effect.flatMap(
                  Ref.modify(staged, (writes) => (writes === undefined ? [false, writes] : [true, [...writes, write]])),
                  (accepted) => (accepted ? Effect.void : Effect.fail(ended("stage")))
                ),
          commit: Effect.uninterruptible(
            Effect.gen(function* () {
              const writes = yield* Ref.getAndSet(staged, undefined)
              if (writes === undefined) return yield* ended("commit")
              yield* Ref.update(committed, (snapshot) => {
                const tables = new Map([...snapshot].map(([name, table]) => [name, new Map(table)]))
                writes.forEach((write) => applyWrite(tables, write))
                return tables
              })
              if (writes.length > 0) yield* Ref.update(commitCount, (n) => n + 1)
              return writes.length
            })
          ),
          rollback: discard
        }
        return transaction
      })
  }
  return { service, store: { snapshot: Ref.get(committed), commits: Ref.get(commitCount) } }
})

/**
 * An in-memory store: staged writes live in the run, a commit applies them in
 * one atomic update. Provides `StagedWrites` and `MemoryStore`.
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<StagedWrites | MemoryStore> = Layer.effectContext(
  makeMemory.pipe(
    Effect.map(({ service, store }) => Context.make(StagedWrites, service).pipe(Context.add(MemoryStore, store)))
  )
)
