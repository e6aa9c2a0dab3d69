/** One replica in memory (`TestRunner.layer`) over PostgreSQL run rows, and the agent the entity tests run. */
import { TestRunner } from "@effect/cluster"
import { Agent, AgentRun, RunRegistry, SessionStore, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import { Effect, Layer, Schema } from "effect"
import { RunFence, SessionEntity } from "../../src/index.js"
import { client, dropTables, uniquePrefix } from "./Postgres.js"

/** Stages the note `n-1` of table `notes`. */
export const saveNote = Tool.make({
  name: "save_note",
  description: "Saves a note",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.String,
  handler: ({ text }) => Effect.as(AgentRun.stage(StagedWrites.upsert("notes", "n-1", { text })), "saved")
})

export const agent = Agent.make({ name: "notes", tools: [saveNote] })

/**
 * `services` on one replica: the registry, the run rows under a fresh table prefix (dropped at the end), fenced
 * staged writes, `script` as the model, `TestRunner.layer`.
 */
export const replicaWith = <A, E, R>(script: ScriptedModel.Script, services: Layer.Layer<A, E, R>) => {
  const prefix = uniquePrefix()
  const fence = RunFence.layer({ prefix, owner: "replica-test" })
  const base = Layer.mergeAll(
    RunRegistry.layer(),
    fence,
    RunFence.layerStagedWrites({ recordsTable: `${prefix}_records` }).pipe(Layer.provide(fence)),
    ScriptedModel.layer(script),
    TestRunner.layer
  )
  return services.pipe(
    Layer.provideMerge(base),
    Layer.provideMerge(Layer.scopedDiscard(dropTables(prefix))),
    Layer.provideMerge(client),
    Layer.orDie
  )
}

/**
 * The session entity of `agent` on one replica (`replicaWith`), with `options` of `SessionEntity.layer`, over a
 * memory session store (provided too).
 */
export const replica = (script: ScriptedModel.Script, options?: Omit<SessionEntity.Options<never>, "agent">) =>
  replicaWith(script, SessionEntity.layer({ ...options, agent }).pipe(Layer.provideMerge(SessionStore.layerMemory())))
