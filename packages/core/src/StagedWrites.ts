/**
 * Writes a run makes are staged and committed only when the run succeeds. On
 * failure or interruption they are rolled back. A commit is atomic: all of a
 * run's writes land, or none.
 *
 * Core holds the interface and an in-memory layer; `@tether/sql` backs it with
 * SQLite or PostgreSQL.
 *
 * A run that read a record and stages a write based on it also stages an
 * `expect` of what it read: at commit, a record changed since (by a run that
 * committed in between) fails the commit with `WriteConflictError`, and
 * nothing of the run lands (no lost update, however long the run took).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { AgentRun, StagedWrites, Tool } from "@tether/core"
 *
 * // A tool stages its write; the run commits it only if the run succeeds.
 * const placeOrder = Tool.make({
 *   name: "place_order",
 *   description: "Places an order",
 *   input: Schema.Struct({ id: Schema.String, total: Schema.Number }),
 *   output: Schema.String,
 *   handler: (order) => Effect.as(AgentRun.stage(StagedWrites.upsert("orders", order.id, order)), "placed")
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Ref, Schema } from "effect"
import type { Scope } from "effect"

/**
 * Set `table[key]` to `value` (JSON).
 *
 * @since 0.1.0
 */
export class Upsert extends Schema.TaggedClass<Upsert>()("Upsert", {
  table: Schema.String,
  key: Schema.String,
  value: Schema.Unknown
}) {}

/**
 * Remove `table[key]`.
 *
 * @since 0.1.0
 */
export class Delete extends Schema.TaggedClass<Delete>()("Delete", { table: Schema.String, key: Schema.String }) {}

/**
 * A SQL statement with positional parameters (SQL backends only).
 *
 * @since 0.1.0
 */
export class Statement extends Schema.TaggedClass<Statement>()("Statement", {
  sql: Schema.String,
  params: Schema.Array(Schema.Unknown)
}) {}

/**
 * A precondition, checked at commit where it stands among the run's writes: `table[key]` holds `expected` (equal
 * as JSON: key order does not matter), or is absent when `expected` is `None`.
 *
 * @since 0.1.0
 */
export class Expect extends Schema.TaggedClass<Expect>()("Expect", {
  table: Schema.String,
  key: Schema.String,
  expected: Schema.Option(Schema.Unknown)
}) {}

/** @since 0.1.0 */
export const Write = Schema.Union(Upsert, Delete, Statement, Expect)
/** @since 0.1.0 */
export type Write = typeof Write.Type

/** @since 0.1.0 */
export const upsert = (table: string, key: string, value: unknown): Write => new Upsert({ table, key, value })
/** @since 0.1.0 */
export const remove = (table: string, key: string): Write => new Delete({ table, key })
/** @since 0.1.0 */
export const statement = (sql: string, params: ReadonlyArray<unknown> = []): Write => new Statement({ sql, params })

/**
 * At commit, `table[key]` must still be `expected`: what the run read (`SqlStagedWrites.read` gives an `Option`),
 * `Option.none()` for "still absent". Otherwise the commit fails with `WriteConflictError` and applies nothing.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { AgentRun, StagedWrites } from "@tether/core"
 *
 * // In a tool's handler, with `current` as read from the store (e.g. with SqlStagedWrites.read):
 * const take = (current: Option.Option<{ readonly count: number }>) =>
 *   Effect.gen(function* () {
 *     const count = Option.match(current, { onNone: () => 0, onSome: (stock) => stock.count })
 *     yield* AgentRun.stage(StagedWrites.expect("stock", "kettle", current))
 *     yield* AgentRun.stage(StagedWrites.upsert("stock", "kettle", { count: count - 1 }))
 *   })
 * ```
 *
 * @since 0.1.0
 */
export const expect = (table: string, key: string, expected: Option.Option<unknown>): Write =>
  new Expect({ table, key, expected })

/**
 * Whether a record's current value meets an `Expect`: both absent, or both present and equal as JSON (what a SQL
 * backend stores: key order, `undefined` members and `toJSON` do not matter; a value without a JSON form, such as
 * a `bigint` or a cycle, equals nothing). For backends.
 *
 * @since 0.1.0
 */
export const meetsExpectation = (expected: Option.Option<unknown>, current: Option.Option<unknown>): boolean => {
  if (Option.isNone(expected) || Option.isNone(current)) return Option.isNone(expected) && Option.isNone(current)
  const json = canonicalJson(expected.value)
  return json !== undefined && json === canonicalJson(current.value)
}

/** JSON text with every object's keys sorted; `undefined` for a value without a JSON form. */
const canonicalJson = (value: unknown): string | undefined => {
  try {
    return JSON.stringify(value, (_key, node: unknown) =>
      typeof node === "object" && node !== null && !Array.isArray(node)
        ? Object.fromEntries(Object.entries(node).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : node
    )
  } catch {
    return undefined
  }
}

/**
 * A one-line description of a write, for events and logs.
 *
 * @since 0.1.0
 */
export const describe = (write: Write): string => {
  switch (write._tag) {
    case "Upsert":
      return `upsert ${write.table}/${write.key}`
    case "Delete":
      return `delete ${write.table}/${write.key}`
    case "Statement":
      return write.sql.length > 80 ? `${write.sql.slice(0, 77)}...` : write.sql
    case "Expect":
      return `expect ${write.table}/${write.key} ${Option.isSome(write.expected) ? "unchanged" : "absent"}`
  }
}

/**
 * A write could not be staged, committed or rolled back.
 *
 * @since 0.1.0
 */
export class StagedWriteError extends Schema.TaggedError<StagedWriteError>()("StagedWriteError", {
  operation: Schema.Literal("begin", "stage", "commit", "rollback"),
  message: Schema.String
}) {}

/**
 * A commit found a record other than its `Expect` said (another run committed it in between): nothing of the
 * commit was applied. Retrying the run reads the record afresh.
 *
 * @since 0.1.0
 */
export class WriteConflictError extends Schema.TaggedError<WriteConflictError>()("WriteConflictError", {
  table: Schema.String,
  key: Schema.String,
  message: Schema.String
}) {}

/**
 * The connection to the database was lost after the commit was sent and before its answer came back: the run's
 * writes may or may not have been applied, and nothing here can tell. The commit is not retried (a retry could apply
 * them twice) and nothing is rolled back; read the records to know.
 *
 * @since 0.1.0
 */
export class CommitOutcomeUnknownError extends Schema.TaggedError<CommitOutcomeUnknownError>()(
  "CommitOutcomeUnknownError",
  { writes: Schema.Number, message: Schema.String }
) {}

/**
 * The commit was refused because the run no longer holds its claim (in cluster mode: its epoch was bumped or the run
 * was ended by a sweeper, because its replica was presumed lost). The check runs inside the commit's own transaction,
 * so nothing of the run was applied. The run cannot commit again.
 *
 * @since 0.1.0
 */
export class CommitFencedError extends Schema.TaggedError<CommitFencedError>()("CommitFencedError", {
  runId: Schema.String,
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
  /**
   * Applies every staged write atomically; returns how many were staged (an `Expect` counts as one, as it has its
   * `WriteStaged` event). On failure nothing was applied and the writes stay staged, except after a
   * `CommitOutcomeUnknownError`, when they may have been applied and are no longer staged.
   */
  readonly commit: Effect.Effect<
    number,
    StagedWriteError | WriteConflictError | CommitOutcomeUnknownError | CommitFencedError
  >
  /** Discards every staged write; returns how many were discarded. */
  readonly rollback: Effect.Effect<number, StagedWriteError>
}

/** @since 0.1.0 */
export interface Service {
  readonly begin: (runId: string) => Effect.Effect<Transaction, StagedWriteError, Scope.Scope>
}

/** @since 0.1.0 */
export class StagedWrites extends Context.Tag("@tether/core/StagedWrites")<StagedWrites, Service>() {}

/**
 * The committed contents of the in-memory store: table -> key -> value.
 *
 * @since 0.1.0
 */
export type Snapshot = ReadonlyMap<string, ReadonlyMap<string, unknown>>

/**
 * Read access to what the in-memory layer (`layerMemory`) committed: what a test asserts on. `snapshot` is every
 * committed record, table -> key -> value (an immutable copy: later commits do not change it); `commits` counts
 * the commits of runs that staged something. A cancelled or failed run leaves both unchanged.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
 * import { ScriptedModel } from "@tether/testing"
 *
 * const saveNote = Tool.make({
 *   name: "save_note",
 *   description: "Saves a note",
 *   input: Schema.Struct({ text: Schema.String }),
 *   output: Schema.String,
 *   handler: ({ text }) => Effect.as(AgentRun.stage(StagedWrites.upsert("notes", "n-1", { text })), "saved")
 * })
 * const agent = Agent.make({ name: "notes", tools: [saveNote] })
 * const model = ScriptedModel.layer([
 *   [ScriptedModel.toolUse("save_note", { text: "buy milk" })],
 *   ScriptedModel.text("Saved.")
 * ])
 *
 * const program = Effect.gen(function* () {
 *   yield* AgentRun.run(agent, "Note: buy milk")
 *   const store = yield* StagedWrites.MemoryStore
 *   const snapshot = yield* store.snapshot
 *   return { note: snapshot.get("notes")?.get("n-1"), commits: yield* store.commits }
 * })
 *
 * console.log(await Effect.runPromise(program.pipe(Effect.provide(Layer.merge(model, StagedWrites.layerMemory)))))
 * // { note: { text: 'buy milk' }, commits: 1 }
 * ```
 *
 * @since 0.1.0
 * @category testing
 */
export class MemoryStore extends Context.Tag("@tether/core/StagedWrites/MemoryStore")<
  MemoryStore,
  {
    /** Every committed record: table -> key -> value. */
    readonly snapshot: Effect.Effect<Snapshot>
    /** How many runs committed at least one staged write. */
    readonly commits: Effect.Effect<number>
  }
>() {}

/**
 * The conflict of an `Expect` that a commit found unmet.
 *
 * @since 0.1.0
 */
export const conflict = (runId: string, write: Expect): WriteConflictError =>
  new WriteConflictError({
    table: write.table,
    key: write.key,
    message: `run ${runId}: ${write.table}/${write.key} is not what the run expected (${Option.isSome(write.expected) ? "it changed" : "it exists"} since the run read it); nothing was applied`
  })

type MemoryWrite = Upsert | Delete | Expect

/** Applies `write` to `tables`; an unmet `Expect` is returned instead. */
const applyWrite = (tables: Map<string, Map<string, unknown>>, write: MemoryWrite): Expect | undefined => {
  if (write._tag === "Expect") {
    // Only reads: an expectation on a table nobody wrote leaves no empty table behind.
    const table = tables.get(write.table)
    const current = table?.has(write.key) ? Option.some(table.get(write.key)) : Option.none()
    return meetsExpectation(write.expected, current) ? undefined : write
  }
  const table = tables.get(write.table) ?? new Map<string, unknown>()
  tables.set(write.table, table)
  if (write._tag === "Upsert") table.set(write.key, write.value)
  else table.delete(write.key)
}

const makeMemory = Effect.gen(function* () {
  const committed = yield* Ref.make<Snapshot>(new Map())
  const commitCount = yield* Ref.make(0)
  const service: Service = {
    begin: (runId) =>
      Effect.gen(function* () {
        // `undefined` once the transaction ended: a late write (from work that ignored the cancel) is refused.
        const staged = yield* Ref.make<ReadonlyArray<MemoryWrite> | undefined>([])
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
              const unmet = yield* Ref.modify(committed, (snapshot): [Expect | undefined, Snapshot] => {
                const tables = new Map([...snapshot].map(([name, table]) => [name, new Map(table)]))
                for (const write of writes) {
                  const failed = applyWrite(tables, write)
                  if (failed !== undefined) return [failed, snapshot]
                }
                return [undefined, tables]
              })
              if (unmet !== undefined) {
                // As on a SQL backend: nothing applied, the writes stay staged.
                yield* Ref.set(staged, writes)
                return yield* conflict(runId, unmet)
              }
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
