import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, FastCheck as fc, Fiber, Layer, Runtime, Schema, Stream } from "effect"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Agent, AgentRun, CancelReason, Checkpoint, Message, StagedWrites, Tool } from "@tether/core"
import type { RunEvent } from "@tether/core"
import { ScriptedModel } from "@tether/testing"

/** Latencies measured by the tests, printed at the end. */
const figures: Record<string, Array<number>> = {}
const record = (name: string, millis: number) => {
  ;(figures[name] ??= []).push(Math.round(millis * 10) / 10)
}
afterAll(() => {
  console.info(`ToolInterop figures (ms): ${JSON.stringify(figures)}`)
})

const setup = (script: ScriptedModel.Script) => Layer.mergeAll(ScriptedModel.layer(script), StagedWrites.layerMemory)

const committed = Effect.flatMap(StagedWrites.MemoryStore, (store) => Effect.all([store.snapshot, store.commits]))

/** Polls `condition` every 5 ms; dies after 5 seconds. */
const eventually = (label: string, condition: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    const deadline = Date.now() + 5_000
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${label}`)
      yield* Effect.sleep("5 millis")
    }
  })

/** Cancels a run and measures how long the cancel took. */
const timedCancel = (run: AgentRun.AgentRun) =>
  Effect.gen(function* () {
    const startedAt = performance.now()
    const outcome = yield* run.cancel(new CancelReason.UserAbort())
    return { outcome, millis: performance.now() - startedAt }
  })

/** The run's fiber ended interrupted, and not by a defect (with `onLeak: "die"`, a leaked fiber is one). */
const expectInterruptedOnly = (run: AgentRun.AgentRun) =>
  Effect.gen(function* () {
    const exit = yield* Fiber.await(yield* run.fiber)
    expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
  })

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

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

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

const spin = Tool.inWorker("spin", {
  description: "Spins on the CPU in a worker thread",
  input: Schema.Struct({ millis: Schema.Number, fail: Schema.optional(Schema.Boolean) }),
  output: Schema.Struct({ spins: Schema.Number }),
  module: new URL("./fixtures/spin-worker.mjs", import.meta.url),
  poolSize: 2
})

const square = Tool.inWorker("square", {
  description: "Squares a number in a worker written with Tool.workerMain",
  input: Schema.Struct({ n: Schema.Number }),
  output: Schema.Struct({ square: Schema.Number }),
  module: new URL("./fixtures/square-worker.boot.mjs", import.meta.url),
  poolSize: 1
})

const sleeper = Tool.command("sleeper", {
  description: "Sleeps",
  input: Schema.Struct({ seconds: Schema.Number }),
  output: Schema.String,
  command: ({ seconds }) => ({ cmd: "sleep", args: [String(seconds)] })
})

/** A shell that starts a grandchild in its group and writes both pids to `pidFile`. */
const family = Tool.command("family", {
  description: "A shell with a background child",
  input: Schema.Struct({ pidFile: Schema.String }),
  output: Schema.String,
  command: ({ pidFile }) => ({
    cmd: "sh",
    args: ["-c", 'sleep 60 & echo "$$ $!" >> "$PID_FILE"; wait'],
    env: { PID_FILE: pidFile }
  })
})

const stubbornFor = (options: {
  readonly abandonAfter: Duration.DurationInput
  readonly resolveAfterMillis: number
  readonly onLateWrite: (error: unknown) => void
}) =>
  Tool.fromPromise("stubborn", {
    description: "Ignores its abort signal",
    input: Schema.Struct({}),
    output: Schema.String,
    abandonAfter: options.abandonAfter,
    run: async (_input, _signal, run) => {
      await run.stage(StagedWrites.upsert("early", "k", 1))
      await sleep(options.resolveAfterMillis)
      options.onLateWrite(
        await run.stage(StagedWrites.upsert("late", "k", 1)).then(
          () => undefined,
          (e) => e
        )
      )
      return "finished anyway"
    }
  })

const cooperative = Tool.fromPromise("cooperative", {
  description: "Waits 10 s unless aborted",
  input: Schema.Struct({}),
  output: Schema.String,
  run: (_input, signal) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => resolve("waited"), 10_000)
      signal.addEventListener("abort", () => {
        clearTimeout(timer)
        reject(signal.reason)
      })
    })
})

afterAll(() => Effect.runPromise(Effect.all([spin.shutdown, square.shutdown])))

const collectEvents = (run: AgentRun.AgentRun) =>
  Effect.fork(Stream.runCollect(run.events).pipe(Effect.map(Chunk.toReadonlyArray)))

// --- Tests ---------------------------------------------------------------------------------------------------

describe("Tool.inWorker", () => {
  it.live("returns the worker's reply decoded, and a worker's { ok: false } as ToolWorkerError", () =>
    Effect.gen(function* () {
      expect(yield* spin.handler({ millis: 1 })).toMatchObject({ spins: expect.any(Number) })
      const failure = yield* Effect.flip(spin.handler({ millis: 1, fail: true }))
      expect(failure).toMatchObject({ _tag: "ToolWorkerError", tool: "spin", message: "refused to spin for 1 ms" })
      const stats = yield* spin.workers
      expect(stats).toMatchObject({ live: 2, busy: 0, exited: 0 })
    })
  )

  it.live("Tool.workerMain answers with the function's value, or its throw as ToolWorkerError", () =>
    Effect.gen(function* () {
      expect(yield* square.handler({ n: 7 })).toEqual({ square: 49 })
      const failure = yield* Effect.flip(square.handler({ n: -1 }))
      expect(failure).toMatchObject({ _tag: "ToolWorkerError", message: "cannot square -1" })
    })
  )

  it.live("a worker module that cannot load is a ToolWorkerError, and no thread is left", () =>
    Effect.gen(function* () {
      const missing = Tool.inWorker("missing", {
        description: "Has no module",
        input: Schema.Struct({}),
        output: Schema.Unknown,
        module: new URL("./fixtures/does-not-exist.mjs", import.meta.url),
        poolSize: 1
      })
      const failure = yield* Effect.flip(missing.handler({}))
      expect(failure).toMatchObject({ _tag: "ToolWorkerError", message: expect.stringMatching(/does-not-exist/) })
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

describe("Tool.command", () => {
  it.live("decodes stdout, through parse when given; a failing command is a ToolCommandError with its stderr", () =>
    Effect.gen(function* () {
      const words = Tool.command("words", {
        description: "Splits words",
        input: Schema.Struct({ text: Schema.String }),
        output: Schema.Array(Schema.String),
        command: ({ text }) => ({ cmd: "sh", args: ["-c", 'printf "%s" "$TEXT" | tr " " "\\n"'], env: { TEXT: text } }),
        parse: (stdout) => stdout.split("\n")
      })
      expect(yield* words.handler({ text: "one two three" })).toEqual(["one", "two", "three"])
      const echo = Tool.command("echo", {
        description: "Echoes",
        input: Schema.String,
        output: Schema.String,
        command: (text) => ({ cmd: "echo", args: ["-n", text] })
      })
      expect(yield* echo.handler("hello")).toBe("hello")
      const failing = Tool.command("failing", {
        description: "Fails",
        input: Schema.Struct({}),
        output: Schema.String,
        command: () => ({ cmd: "sh", args: ["-c", "echo broken >&2; exit 3"] })
      })
      const failure = yield* Effect.flip(failing.handler({}))
      expect(failure).toMatchObject({ _tag: "ToolCommandError", exitCode: 3, stderr: "broken\n" })
      const missing = Tool.command("missing", {
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
      const deaf = Tool.command("deaf", {
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

describe("Tool.fromPromise", () => {
  it.live("a Promise that honours its signal stops at once and is not reported abandoned", () =>
    Effect.gen(function* () {
      const run = yield* AgentRun.start(Agent.make({ name: "polite", tools: [cooperative] }), "go", {
        onLeak: "die"
      })
      const events = yield* collectEvents(run)
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("cooperativePromiseStop", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(500)
      const tags = (yield* Fiber.join(events)).map((event) => event._tag)
      expect(tags).toContain("ToolInterrupted")
      expect(tags).not.toContain("ToolAbandoned")
      expect(yield* cooperative.abandoned).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("cooperative", {})], ScriptedModel.text("done")]))
    )
  )

  it.live("a Promise that ignores its signal is abandoned after the grace period; its late writes never commit", () =>
    Effect.gen(function* () {
      let resolveLate: (error: unknown) => void = () => {}
      const lateWrite = new Promise<unknown>((resolve) => {
        resolveLate = resolve
      })
      const stubborn = stubbornFor({ abandonAfter: "200 millis", resolveAfterMillis: 600, onLateWrite: resolveLate })
      const run = yield* AgentRun.start(Agent.make({ name: "stubborn", tools: [stubborn] }), "go", {
        onLeak: "die"
      })
      const events = yield* collectEvents(run)
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("abandonedPromiseCancel(grace 200)", millis)
      expect(millis).toBeGreaterThanOrEqual(190)
      expect(millis).toBeLessThan(1_000)
      expect(outcome).toMatchObject({ _tag: "Cancelled", writesRolledBack: 1 })
      expect(yield* stubborn.abandoned).toBe(1)
      const all = yield* Fiber.join(events)
      const abandoned = all.filter((event): event is RunEvent.ToolAbandoned => event._tag === "ToolAbandoned")
      expect(abandoned).toEqual([
        expect.objectContaining({ toolUseId: "toolu_stubborn", tool: "stubborn", afterMillis: 200 })
      ])
      expect(all.findIndex((event) => event._tag === "ToolAbandoned")).toBeLessThan(
        all.findIndex((event) => event._tag === "RunCancelled")
      )
      // The Promise goes on, resolves and tries to write: refused.
      const refusal = yield* Effect.promise(() => lateWrite)
      expect(refusal).toMatchObject({ _tag: "StagedWriteError", operation: "stage" })
      yield* eventually(
        "the abandoned Promise to settle",
        Effect.map(stubborn.abandoned, (n) => n === 0)
      )
      const [snapshot, commits] = yield* committed
      expect(snapshot.size).toBe(0)
      expect(commits).toBe(0)
      yield* expectInterruptedOnly(run)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([[ScriptedModel.toolUse("stubborn", {}, { id: "toolu_stubborn" })], ScriptedModel.text("done")])
      )
    )
  )

  it.live("a timed-out Promise's late write is refused while the run goes on and commits the rest", () =>
    Effect.gen(function* () {
      let resolveLate: (error: unknown) => void = () => {}
      const lateWrite = new Promise<unknown>((resolve) => {
        resolveLate = resolve
      })
      const slow = Tool.fromPromise("slow_writer", {
        description: "Writes too late",
        input: Schema.Struct({}),
        output: Schema.String,
        timeout: "100 millis",
        abandonAfter: "50 millis",
        run: async (_input, _signal, run) => {
          await sleep(300)
          resolveLate(
            await run.stage(StagedWrites.upsert("late", "k", 1)).then(
              () => undefined,
              (e) => e
            )
          )
          return "late"
        }
      })
      const quick = Tool.make("quick_writer", {
        description: "Writes",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () => Effect.as(AgentRun.stage(StagedWrites.upsert("quick", "k", 1)), "ok")
      })
      const run = yield* AgentRun.start(Agent.make({ name: "mixed", tools: [slow, quick] }), "go", { onLeak: "die" })
      const events = yield* collectEvents(run)
      const refusal = yield* Effect.promise(() => lateWrite)
      expect(yield* run.poll).toEqual(expect.objectContaining({ _tag: "None" }))
      expect(refusal).toMatchObject({ _tag: "StagedWriteError" })
      const outcome = yield* run.outcome
      expect(outcome).toMatchObject({ _tag: "Completed", writesCommitted: 1 })
      const [snapshot] = yield* committed
      expect([...snapshot.keys()]).toEqual(["quick"])
      const tags = (yield* Fiber.join(events)).map((event) => event._tag)
      expect(tags).toContain("ToolAbandoned")
      if (outcome._tag !== "Completed") return
      const results = outcome.transcript
        .flatMap((message) => message.content)
        .filter((block): block is Message.ToolResultBlock => block.type === "tool_result")
      expect(results.find((result) => result.isError)?.content).toMatch(/ToolTimeoutError/)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        setup([
          [ScriptedModel.toolUse("slow_writer", {}), ScriptedModel.toolUse("quick_writer", {})],
          ScriptedModel.text("all done", { chunks: 2, delay: "500 millis" })
        ])
      )
    )
  )

  it.live("a rejected Promise goes back to the model as a ToolPromiseError", () =>
    Effect.gen(function* () {
      const broken = Tool.fromPromise("broken", {
        description: "Rejects",
        input: Schema.Struct({}),
        output: Schema.String,
        run: async () => {
          throw new Error("boom")
        }
      })
      const result = yield* Agent.run(Agent.make({ name: "b", tools: [broken] }), "go")
      const toolResult = result.transcript[2]!.content[0] as Message.ToolResultBlock
      expect(toolResult).toMatchObject({ isError: true, content: "ToolPromiseError: boom" })
    }).pipe(Effect.provide(setup([[ScriptedModel.toolUse("broken", {})], ScriptedModel.text("ok")])))
  )

  it.live("work a tool left running that writes through AgentRun.stage after the run ended is refused", () =>
    Effect.gen(function* () {
      let resolveLate: (exit: Exit.Exit<void, StagedWrites.StagedWriteError>) => void = () => {}
      const lateWrite = new Promise<Exit.Exit<void, StagedWrites.StagedWriteError>>((resolve) => {
        resolveLate = resolve
      })
      const leaky = Tool.make("leaky", {
        description: "Starts work outside Effect and returns",
        input: Schema.Struct({}),
        output: Schema.String,
        handler: () =>
          Effect.map(Effect.runtime<AgentRun.CurrentRun>(), (runtime) => {
            void sleep(200).then(() =>
              Runtime.runPromiseExit(runtime)(AgentRun.stage(StagedWrites.upsert("leaked", "k", 1))).then(resolveLate)
            )
            return "started"
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "leaky", tools: [leaky] }), "go")
      yield* Effect.sleep("50 millis")
      yield* run.cancel(new CancelReason.UserAbort())
      const exit = yield* Effect.promise(() => lateWrite)
      expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
        _tag: "StagedWriteError",
        message: "the run's transaction has already ended"
      })
      const [snapshot, commits] = yield* committed
      expect(snapshot.size).toBe(0)
      expect(commits).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(setup([[ScriptedModel.toolUse("leaky", {})], ScriptedModel.text("x", { delay: "1 hour" })]))
    )
  )
})

describe("Checkpoint.run", () => {
  const busyFor = (millis: number) => {
    const until = performance.now() + millis
    while (performance.now() < until) {
      // spin
    }
  }

  it.live("returns the work's result; a throw fails with CheckpointError", () =>
    Effect.gen(function* () {
      const sum = yield* Checkpoint.run(function* () {
        let total = 0
        for (let i = 1; i <= 1000; i++) {
          total += i
          yield
        }
        return total
      })
      expect(sum).toBe(500500)
      const failure = yield* Effect.flip(
        Checkpoint.run(function* () {
          yield
          throw new Error("bad row")
        })
      )
      expect(failure).toMatchObject({ _tag: "CheckpointError", message: "bad row" })
    })
  )

  it.live("interrupting stops the work at its next checkpoint and runs its finally blocks", () =>
    Effect.gen(function* () {
      let steps = 0
      let isCleanedUp = false
      const fiber = yield* Effect.fork(
        Checkpoint.run(function* () {
          try {
            while (true) {
              busyFor(0.2)
              steps++
              yield
            }
          } finally {
            isCleanedUp = true
          }
        })
      )
      // Timers still fire while the work runs: it gives the thread back between slices.
      yield* Effect.sleep("100 millis")
      expect(steps).toBeGreaterThan(10)
      const startedAt = performance.now()
      yield* Fiber.interrupt(fiber)
      record("checkpointStop", performance.now() - startedAt)
      const stepsAtStop = steps
      expect(isCleanedUp).toBe(true)
      yield* Effect.sleep("50 millis")
      expect(steps).toBe(stepsAtStop)
    })
  )

  it.live("a tool whose loop has checkpoints stops with its run", () =>
    Effect.gen(function* () {
      let steps = 0
      const crunch = Tool.make("crunch", {
        description: "Crunches for 10 s",
        input: Schema.Struct({}),
        output: Schema.Number,
        handler: () =>
          Checkpoint.run(function* () {
            const until = Date.now() + 10_000
            while (Date.now() < until) {
              busyFor(0.1)
              steps++
              yield
            }
            return steps
          })
      })
      const run = yield* AgentRun.start(Agent.make({ name: "crunch", tools: [crunch] }), "go", { onLeak: "die" })
      yield* eventually(
        "the work",
        Effect.sync(() => steps > 0)
      )
      yield* Effect.sleep("50 millis")
      const { outcome, millis } = yield* timedCancel(run)
      record("checkpointToolCancel", millis)
      expect(outcome._tag).toBe("Cancelled")
      expect(millis).toBeLessThan(500)
      const stepsAtStop = steps
      yield* Effect.sleep("30 millis")
      expect(steps).toBe(stepsAtStop)
      yield* expectInterruptedOnly(run)
    }).pipe(Effect.scoped, Effect.provide(setup([[ScriptedModel.toolUse("crunch", {})], ScriptedModel.text("done")])))
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
  const stubborn = Tool.fromPromise("stubborn", {
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
