import { Console, Effect, Layer, Schema } from "effect"
import { Agent, AgentRun, StagedWrites, Tool } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

const saveNote = Tool.make({
  name: "save_note",
  description: "Saves a note",
  input: Schema.Struct({ id: Schema.String, text: Schema.String }),
  output: Schema.String,
  // Staged: the note is written when the run succeeds, never otherwise.
  handler: (note) => Effect.as(AgentRun.stage(StagedWrites.upsert("notes", note.id, note)), "saved")
})

const notes = Agent.make({ name: "notes", system: "Keep the user's notes.", tools: [saveNote] })

// A scripted model, offline: it calls the tool, then answers.
const model = ScriptedModel.layer([
  [ScriptedModel.toolUse("save_note", { id: "n-1", text: "buy milk" })],
  ScriptedModel.text("Saved.")
])

const program = Effect.gen(function* () {
  const result = yield* AgentRun.run(notes, "Note: buy milk")
  // What the in-memory store committed (what a test asserts on): every record, and how many runs committed.
  const store = yield* StagedWrites.MemoryStore
  const committed = yield* store.snapshot
  yield* Console.log(result.text, committed.get("notes")?.get("n-1"), yield* store.commits)
})

program.pipe(Effect.provide(Layer.merge(model, StagedWrites.layerMemory)), Effect.runPromise)
