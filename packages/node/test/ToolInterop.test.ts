import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Fiber, Schema } from "effect"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Agent, AgentRun, PromiseTool, StagedWrites } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import { CommandTool, WorkerTool } from "@tether/node"
import {
  committed,
  cooperative,
  eventually,
  expectInterruptedOnly,
  record,
  setup,
  sleep,
  timedCancel
} from "../../core/test/support/interop.js"

/** "gone" once the pid is free; "zombie" for a dead process its parent has not reaped yet. */
const processState = (pid: number): "gone" | "zombie" | "alive" => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return "gone"
    throw error
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") return "zombie"
  } catch {
    return "gone"
  }
  return "alive"
}

const tempFile = (name: string) => join(tmpdir(), `tether-interop-${process.pid}-${Date.now()}-${name}`)

/** The pids a shell wrote, one line "shell grandchild" per command. */
const readPids = (file: string): ReadonlyArray<readonly [number, number]> => {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => /^\d+ \d+$/.test(line))
      .map((line) => {
        const [shell, grandchild] = line.split(" ").map(Number)
        return [shell!, grandchild!] as const
      })
  } catch {
    return []
  }
}

// --- Tools ---------------------------------------------------------------------------------------------------

const spin = WorkerTool.make({
  name: "spin",
  description: "Spins on the CPU in a worker thread",
  input: Schema.Struct({ millis: Schema.Number, fail: Schema.optional(Schema.Boolean) }),
  output: Schema.Struct({ spins: Schema.Number }),
  module: new URL("./fixtures/spin-worker.mjs", import.meta.url),
  poolSize: 2
})

const square = WorkerTool.make({
  name: "square",
  description: "Squares a number in a worker written with WorkerTool.workerMain",
  input: Schema.Struct({ n: Schema.Number }),
  output: Schema.Struct({ square: Schema.Number }),
  module: new URL("./fixtures/square-worker.boot.mjs", import.meta.url),
  poolSize: 1
})

const sleeper = CommandTool.make({
  name: "sleeper",
  description: "Sleeps",
  input: Schema.Struct({ seconds: Schema.Number }),
  output: Schema.String,
  command: ({ seconds }) => ({ cmd: "sleep", args: [String(seconds)] })
})

/** A shell that starts a grandchild in its group and writes both pids to `pidFile`. */
const family = CommandTool.make({
  name: "family",
  description: "A shell with a background child",
  input: Schema.Struct({ pidFile: Schema.String }),
  output: Schema.String,
  command: ({ pidFile }) => ({
    cmd: "sh",
    args: ["-c", 'sleep 60 & echo "$$ $!" >> "$PID_FILE"; wait'],
    env: { PID_FILE: pidFile }
  })
})

afterAll(() => Effect.runPromise(Effect.all([spin.shutdown, square.shutdown])))

// --- Tests ---------------------------------------------------------------------------------------------------

describe("WorkerTool", () => {
  it.live("returns the worker's reply decoded, and a worker's { ok: false } as WorkerToolError", () =>
    Effect.gen(function* () {
      expect(yield* spin.handler({ millis: 1 })).toMatchObject({ spins: expect.any(Number) })
      const failure = yield* Effect.flip(spin.handler({ millis: 1, fail: true }))
      expect(failure).toMatchObject({ _tag: "WorkerToolError", tool: "spin", message: "refused to spin for 1 ms" })
      const stats = yield* spin.workers
      expect(stats).toMatchObject({ live: 2, busy: 0, exited: 0 })
    })
  )

  it.live("WorkerTool.workerMain answers with the function's value, or its throw as WorkerToolError", () =>
    Effect.gen(function* () {
      expect(yield* square.handler({ n: 7 })).toEqual({ square: 49 })
      const failure = yield* Effect.flip(square.handler({ n: -1 }))
      expect(failure).toMatchObject({ _tag: "WorkerToolError", message: "cannot square -1" })
    })
  )

  it.live("a worker module that cannot load is a WorkerToolError, and no thread is left", () =>
    Effect.gen(function* () {
      const missing = WorkerTool.make({
        name: "missing",
        description: "Has no module",
        input: Schema.Struct({}),
        output: Schema.Unknown,
        module: new URL("./fixtures/does-not-exist.mjs", import.meta.url),
        poolSize: 1
      })
      const failure = yield* Effect.flip(missing.handler({}))
      expect(failure).toMatchObject({ _tag: "WorkerToolError", message: expect.stringMatching(/does-not-exist/) })
      yield* missing.shutdown
      yield* eventually(
        "every thread to exit",
        Effect.map(missing.workers, (stats) => stats.live === 0)
      )
    })
  )

  it.live("a pool never runs more threads than its size, however many calls wait", () =>
    Effect.gen(function* () {
      const before = yield* spin.workers
      let mostLive = 0
      const watch = Effect.gen(function* () {
        while (true) {
          mostLive = Math.max(mostLive, (yield* spin.workers).live)
          yield* Effect.sleep("1 millis")
        }
      })
      const calls = Effect.all(
        Array.from({ length: 6 }, () => spin.handler({ millis: 20 })),
        { concurrency: "unbounded" }
      )
      const results = yield* Effect.raceFirst(calls, Effect.zipRight(watch, Effect.never))
      expect(results).toHaveLength(6)
      expect(mostLive).toBeLessThanOrEqual(2)
      expect((yield* spin.workers).started - before.started).toBeLessThanOrEqual(2)
    })
  )

  it.live("interrupting the run terminates a worker spinning for 10 s at once; the pool replaces it", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "cpu", tools: [spin] }), "spin", { onLeak: "die" })
      yield* eventually(
        "the worker to be busy",
        Effect.map(spin.workers, (stats) => stats.busy === 1)
      )
      yield* Effect.sleep("50 millis")
      const before = yield* spin.workers
      const { outcome, millis } = yield* timedCancel(run)
      record("workerStop", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(1_000)
      const after = yield* spin.workers
      expect(after.busy).toBe(0)
      expect(after.exited).toBe(before.exited + 1)
      expect(before.threadIds.filter((id) => !after.threadIds.includes(id))).toHaveLength(1)
      yield* eventually(
        "a replacement thread",
        Effect.map(spin.workers, (stats) => stats.live === 2)
      )
      yield* expectInterruptedOnly(run)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("spin", { millis: 10_000 })], ScriptedModel.text("done")]))
    )
  )
})

describe("CommandTool", () => {
  it.live("decodes stdout, through parse when given; a failing command is a CommandToolError with its stderr", () =>
    Effect.gen(function* () {
      const words = CommandTool.make({
        name: "words",
        description: "Splits words",
        input: Schema.Struct({ text: Schema.String }),
        output: Schema.Array(Schema.String),
        command: ({ text }) => ({ cmd: "sh", args: ["-c", 'printf "%s" "$TEXT" | tr " " "\\n"'], env: { TEXT: text } }),
        parse: (stdout) => stdout.split("\n")
      })
      expect(yield* words.handler({ text: "one two three" })).toEqual(["one", "two", "three"])
      const echo = CommandTool.make({
        name: "echo",
        description: "Echoes",
        input: Schema.String,
        output: Schema.String,
        command: (text) => ({ cmd: "echo", args: ["-n", text] })
      })
      expect(yield* echo.handler("hello")).toBe("hello")
      const failing = CommandTool.make({
        name: "failing",
        description: "Fails",
        input: Schema.Struct({}),
        output: Schema.String,
        command: () => ({ cmd: "sh", args: ["-c", "echo broken >&2; exit 3"] })
      })
      const failure = yield* Effect.flip(failing.handler({}))
      expect(failure).toMatchObject({ _tag: "CommandToolError", exitCode: 3, stderr: "broken\n" })
      const missing = CommandTool.make({
        name: "missing",
        description: "Does not exist",
        input: Schema.Struct({}),
        output: Schema.String,
        command: () => ({ cmd: "/nonexistent/tether-command" })
      })
      expect((yield* Effect.flip(missing.handler({}))).message).toMatch(/could not be started/)
      expect(yield* missing.running).toEqual([])
    })
  )

  it.live("interrupting the run kills `sleep 60` and reaps it", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "sleepy", tools: [sleeper] }), "sleep", { onLeak: "die" })
      yield* eventually(
        "the process",
        Effect.map(sleeper.running, (pids) => pids.length === 1)
      )
      const [pid] = yield* sleeper.running
      expect(processState(pid!)).toBe("alive")
      const { outcome, millis } = yield* timedCancel(run)
      record("processKill", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(1_000)
      expect(processState(pid!)).toBe("gone")
      expect(yield* sleeper.running).toEqual([])
      yield* expectInterruptedOnly(run)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("sleeper", { seconds: 60 })], ScriptedModel.text("done")]))
    )
  )

  it.live("interrupting the run kills the command's whole process group, grandchildren included", () => {
    const pidFile = tempFile("family")
    return Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "family", tools: [family] }), "go", { onLeak: "die" })
      yield* eventually(
        "the pids",
        Effect.sync(() => readPids(pidFile).length === 1)
      )
      const [[shell, grandchild]] = readPids(pidFile) as [readonly [number, number]]
      expect([processState(shell), processState(grandchild)]).toEqual(["alive", "alive"])
      const { millis } = yield* timedCancel(run)
      record("processGroupKill", millis)
      expect(millis).toBeLessThan(1_000)
      expect(processState(shell)).toBe("gone")
      // SIGKILLed with its group; the kernel finishes its exit a moment later, and init (not us) reaps it.
      yield* eventually(
        "the grandchild to die",
        Effect.sync(() => processState(grandchild) !== "alive")
      )
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("family", { pidFile })], ScriptedModel.text("done")])),
      Effect.ensuring(Effect.sync(() => rmSync(pidFile, { force: true })))
    )
  })

  it.live("a command that ignores SIGTERM gets SIGKILL after killGrace", () =>
    Effect.gen(function* () {
      const deaf = CommandTool.make({
        name: "deaf",
        description: "Ignores SIGTERM",
        input: Schema.Struct({}),
        output: Schema.String,
        killGrace: "300 millis",
        command: () => ({ cmd: "sh", args: ["-c", "trap '' TERM; sleep 60; echo never"] })
      })
      const fiber = yield* Effect.fork(deaf.handler({}))
      yield* eventually(
        "the process",
        Effect.map(deaf.running, (pids) => pids.length === 1)
      )
      const [pid] = yield* deaf.running
      yield* Effect.sleep("50 millis")
      const startedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      const millis = performance.now() - startedAt
      record("sigtermIgnoredKill", millis)
      expect(millis).toBeGreaterThanOrEqual(250)
      expect(millis).toBeLessThan(2_000)
      expect(processState(pid!)).toBe("gone")
    })
  )
})

type Kind = "cooperative" | "stubborn" | "worker" | "command"

/**
 * One run whose first turn calls a tool of each kind in `kinds`, cancelled after `interruptAfterMillis`;
 * then checks that nothing of it is left: no busy thread, no process, no fiber, no late write.
 */
const mixedRun = (kinds: ReadonlyArray<Kind>, interruptAfterMillis: number) => {
  const pidFile = tempFile("prop")
  const lateWrites: Array<Promise<"landed" | "refused">> = []
  const stubborn = PromiseTool.make({
    name: "stubborn",
    description: "Ignores its abort signal",
    input: Schema.Struct({}),
    output: Schema.String,
    abandonAfter: "50 millis",
    run: (_input, _signal, run) => {
      const late = sleep(250).then(() => run.stage(StagedWrites.upsert("late", String(lateWrites.length), 1)))
      lateWrites.push(
        late.then(
          () => "landed" as const,
          () => "refused" as const
        )
      )
      return late.then(() => "done")
    }
  })
  const callOf: Record<Kind, ScriptedModel.Step> = {
    cooperative: ScriptedModel.toolUse("cooperative", {}),
    stubborn: ScriptedModel.toolUse("stubborn", {}),
    worker: ScriptedModel.toolUse("spin", { millis: 10_000 }),
    command: ScriptedModel.toolUse("family", { pidFile })
  }
  const agent = Agent.make({ name: "mix", tools: [cooperative, stubborn, spin, family], toolConcurrency: 4 })
  return Effect.gen(function* () {
    const run = yield* AgentRun.start(agent, "go", { onLeak: "die", cancelDeadline: "3 seconds" })
    yield* Effect.sleep(interruptAfterMillis)
    const { outcome, millis } = yield* timedCancel(run)
    record("propertyCancel", millis)
    expect(outcome._tag).toBe("Cancelled")
    yield* expectInterruptedOnly(run)
    // Threads: none busy, never more than the pool's size.
    const workers = yield* spin.workers
    expect(workers.busy).toBe(0)
    expect(workers.live).toBeLessThanOrEqual(2)
    // Processes: every shell gone and reaped, every grandchild dead.
    expect(yield* family.running).toEqual([])
    for (const [shell, grandchild] of readPids(pidFile)) {
      expect(processState(shell)).toBe("gone")
      yield* eventually(
        "the grandchild to die",
        Effect.sync(() => processState(grandchild) !== "alive")
      )
    }
    // Promises: the abandoned ones settle, their writes are refused, nothing commits.
    yield* eventually(
      "abandoned Promises to settle",
      Effect.map(stubborn.abandoned, (n) => n === 0)
    )
    expect(yield* Effect.promise(() => Promise.all(lateWrites))).not.toContain("landed")
    const [snapshot, commits] = yield* committed
    expect(snapshot.size).toBe(0)
    expect(commits).toBe(0)
  }).pipe(
    Effect.scoped,
    Effect.provide(setup([kinds.map((kind) => callOf[kind]), ScriptedModel.text("done")])),
    Effect.ensuring(Effect.sync(() => rmSync(pidFile, { force: true })))
  )
}

describe("tools that do not cooperate (property)", () => {
  it.live.prop(
    "for any mix of Promise, worker and command tools and any interrupt instant: no thread, process or fiber outlives the run, no late write lands",
    [
      fc.array(fc.constantFrom<Kind>("cooperative", "stubborn", "worker", "command"), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 0, max: 150 })
    ],
    ([kinds, interruptAfterMillis]) => mixedRun(kinds, interruptAfterMillis),
    { fastCheck: { numRuns: 15 } }
  )
})
