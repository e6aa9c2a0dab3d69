/**
 * Nothing a client receives carries a stack trace or a server path: runs that fail with defects (errors thrown with
 * their stacks), with typed errors whose messages name files of the server, and tools that fail so, over real HTTP.
 * The server's log keeps the whole cause.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck, Layer, Ref } from "effect"
import { Agent, ModelError, StagedWrites, Subtask, Tool, AgentRun } from "@tether/core"
import { Schema } from "effect"
import { ScriptedModel, SessionClient as Client } from "@tether/testing"
import { scrub } from "../src/internal/clientText.js"
import { alice, start } from "./support/harness.js"

const here = fileURLToPath(import.meta.url)

/** Paths of this server's files, as errors quote them. */
const serverPaths = [
  here,
  `${path.join(process.cwd(), "src", "secret-config.ts")}:12:7`,
  "/srv/app/node_modules/pg/lib/client.js",
  "file:///srv/app/dist/main.js",
  "C:\\app\\server\\index.js"
]

const Kind = FastCheck.constantFrom("subtaskDies", "commitDies", "commitFails", "modelFails", "toolDies")
type Kind = typeof Kind extends FastCheck.Arbitrary<infer K> ? K : never

const Case = FastCheck.record({
  kind: Kind,
  before: FastCheck.string({ maxLength: 30 }),
  path: FastCheck.nat({ max: serverPaths.length - 1 }),
  after: FastCheck.string({ maxLength: 30 })
})

/**
 * What the tool is asked to do, in the user message: the path is only named by its index, so that every path a
 * client could see comes from the server (the client's own text is echoed back, in `ToolStarted`'s input).
 */
const Spec = Schema.Struct({ kind: Schema.String, before: Schema.String, path: Schema.Number, after: Schema.String })

/** The server-side message of a spec: the client's text around a path of the server. */
const messageOf = (spec: typeof Spec.Type) => `${spec.before} ${serverPaths[spec.path]} ${spec.after}`

const thrown = (message: string) => new Error(message)

/** A tool that fails the run (or itself) as the spec says. */
const fail = Tool.make({
  name: "fail",
  description: "Fails as asked",
  input: Spec,
  output: Schema.String,
  handler: (spec) =>
    Effect.gen(function* () {
      const { kind } = spec
      const message = messageOf(spec)
      switch (kind) {
        case "subtaskDies":
          yield* Subtask.spawn("doomed", Effect.die(thrown(message)))
          break
        case "commitDies":
        case "commitFails":
          yield* AgentRun.stage(StagedWrites.upsert("fail", kind, message))
          break
        case "toolDies":
          return yield* Effect.die(thrown(message))
      }
      return "done"
    })
})

/** Staged writes whose commit dies or fails with the message a staged `fail` record carries. */
const failingCommits = Layer.succeed(StagedWrites.StagedWrites, {
  begin: () =>
    Effect.map(Ref.make<ReadonlyArray<StagedWrites.Write>>([]), (staged) => ({
      stage: (write) => Ref.update(staged, (writes) => [...writes, write]),
      rollback: Effect.map(Ref.getAndSet(staged, []), (writes) => writes.length),
      commit: Effect.flatMap(Ref.get(staged), (writes) => {
        for (const write of writes) {
          if (write._tag !== "Upsert" || write.table !== "fail") continue
          const message = String(write.value)
          return write.key === "commitDies"
            ? Effect.die(thrown(message))
            : Effect.fail(new StagedWrites.StagedWriteError({ operation: "commit", message }))
        }
        return Effect.succeed(writes.length)
      })
    }))
})

const script: ScriptedModel.Script = (request) => {
  const first = request.messages[0]?.content[0]
  const spec = Schema.decodeUnknownSync(Schema.parseJson(Spec))(first?.type === "text" ? first.text : "{}")
  const last = request.messages[request.messages.length - 1]
  if (last?.content.some((block) => block.type === "tool_result")) return ScriptedModel.text("finished")
  if (spec.kind === "modelFails")
    return [ScriptedModel.fail(new ModelError.InvalidRequestError({ message: messageOf(spec) }))]
  return [ScriptedModel.toolUse("fail", spec)]
}

/** Every string inside a JSON value. */
const stringsOf = (value: unknown): ReadonlyArray<string> => {
  if (typeof value === "string") return [value]
  if (Array.isArray(value)) return value.flatMap(stringsOf)
  if (typeof value === "object" && value !== null) return Object.values(value).flatMap(stringsOf)
  return []
}

const leaks = (text: string): ReadonlyArray<string> => [
  ...(/^\s+at\s/m.test(text) ? ["a stack frame"] : []),
  ...["node_modules", "file://", process.cwd(), ...serverPaths].filter((p) => text.includes(p))
]

describe("nothing a client receives carries a stack trace or a server path", () => {
  it.scopedLive("runs failing with defects and with messages that name server files, over HTTP", () =>
    Effect.gen(function* () {
      const harness = yield* start({
        script,
        agent: Agent.make({ name: "failing", tools: [fail] }),
        stagedWrites: failingCommits
      })
      const cases = FastCheck.sample(Case, { numRuns: 40, seed: 4242 })
      const kinds = new Set<Kind>()
      for (const [i, c] of cases.entries()) {
        kinds.add(c.kind)
        const sessionId = `leak-${i}`
        const body = JSON.stringify({ message: JSON.stringify(c) })
        const stream = yield* Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: `/api/sessions/${sessionId}/messages`,
          headers: alice,
          body
        })
        const events = yield* stream.ended.pipe(Effect.timeout("10 seconds"))
        const status = yield* Client.requestJson({
          port: harness.port,
          method: "GET",
          path: `/api/sessions/${sessionId}`,
          headers: alice
        })
        const stop = yield* Client.requestJson({
          port: harness.port,
          method: "POST",
          path: `/api/sessions/${sessionId}/cancel`,
          headers: alice
        })
        const replay = yield* Client.openEventStream({
          port: harness.port,
          method: "GET",
          path: `/api/sessions/${sessionId}/events`,
          headers: alice
        }).pipe(Effect.flatMap((s) => s.ended))
        const received = [stream.text(), ...[events, status.json, stop.json, replay].flatMap(stringsOf)]
        for (const text of received) expect(leaks(text), `case ${JSON.stringify(c)}: ${text}`).toEqual([])

        // Every case fails the run: a tool that dies is a defect of the run.
        const tag = {
          subtaskDies: "SubtaskFailedError",
          commitDies: "Defect",
          commitFails: "StagedWriteError",
          modelFails: "InvalidRequestError",
          toolDies: "Defect"
        }[c.kind]
        expect(events.at(-1)?.event).toBe("RunFailed")
        expect(status.json.outcome).toMatchObject({ _tag: "Failed", errorTag: tag })
        expect(stop.json.outcome).toMatchObject({ _tag: "Failed", errorTag: tag })
        // The message is still there, its path replaced.
        expect(status.json.outcome.error).toContain("<path>")
      }
      expect(kinds.size).toBe(5)
    })
  )
})

describe("the scrubbing of error texts", () => {
  it("drops indented stack frames and replaces paths, and keeps the rest of a message as it was", () => {
    const pretty = [
      "Error: could not open /srv/app/config/secret.json",
      "    at readConfig (/srv/app/src/config.ts:12:7)",
      "    at file:///srv/app/dist/main.js:3:1",
      "    ... 3 lines matching cause stack trace ...",
      "    at node:internal/process/task_queues:77:11"
    ].join("\n")
    expect(scrub(pretty)).toBe("Error: could not open <path>")
    expect(scrub("C:\\app\\server\\index.js failed")).toBe("<path> failed")
    for (const kept of [
      "at most 4 runs may go at once from one client address",
      'the body must be sent as application/json, not "text/plain"',
      "POST /sessions is fine",
      "ratio 1/2 of 3/4"
    ]) {
      expect(scrub(kept)).toBe(kept)
    }
  })
})
