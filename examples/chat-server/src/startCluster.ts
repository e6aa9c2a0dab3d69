/**
 * `pnpm start:cluster`: the chat server as a cluster on this machine. Three replicas (`REPLICAS`) in cluster mode on
 * the PostgreSQL of `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/test) with the table prefix
 * `CLUSTER_PREFIX` (default `tether_chat_cluster`), each on a free HTTP port and a free runner port of 127.0.0.1, and
 * a round-robin front on `PORT` (default 3000): open the page there, and each request goes to the next replica. The
 * replicas share one `SESSION_SECRET` (a random one unless it is set), so a cookie of one is good on all. Each line a
 * replica writes starts with its name. Ctrl-C (or SIGTERM) stops the front and the replicas, each of which cancels its
 * runs and writes one line, and exits with 0.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect } from "effect"
import * as Front from "./Front.js"
import * as Replica from "./Replica.js"

const program = Effect.gen(function* () {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(3000))
  const count = yield* Config.integer("REPLICAS").pipe(Config.withDefault(3))
  const databaseUrl = yield* Config.string("DATABASE_URL").pipe(
    Config.withDefault("postgres://postgres@127.0.0.1:5432/test")
  )
  const prefix = yield* Config.string("CLUSTER_PREFIX").pipe(Config.withDefault("tether_chat_cluster"))
  const secret = yield* Config.string("SESSION_SECRET").pipe(Config.withDefault(randomBytes(32).toString("base64")))
  const names = Array.from({ length: count }, (_, i) => `replica-${i + 1}`)
  const width = Math.max(...names.map((name) => name.length))
  const replicas = yield* Effect.forEach(
    names,
    (name) =>
      Effect.flatMap(Replica.freePort, (runnerPort) =>
        Replica.spawn({
          name,
          runnerPort,
          databaseUrl,
          prefix,
          env: { SESSION_SECRET: secret },
          onLine: (line) => console.log(`${name.padEnd(width)} | ${line}`)
        })
      ),
    { concurrency: "unbounded" }
  )
  // All at once (each replica's own release signals it again, ignored, and awaits its exit).
  yield* Effect.addFinalizer(() => Effect.forEach(replicas, (replica) => replica.kill("SIGTERM"), { discard: true }))
  // A replica that exited (killed to watch its sessions fail over, say) is left out of the rotation.
  const running = new Set(replicas)
  for (const replica of replicas) {
    yield* Effect.forkScoped(
      Effect.flatMap(replica.exited, (code) =>
        Effect.zipRight(
          Effect.sync(() => running.delete(replica)),
          Console.log(`${replica.name.padEnd(width)} | exited (${code ?? "killed"}); the front leaves it out`)
        )
      )
    )
  }
  yield* Effect.addFinalizer(() => Console.log("front: stopped"))
  const frontPort = yield* Front.serve({ port, upstreams: () => [...running].map((replica) => replica.port) })
  yield* Console.log(
    `Tether chat cluster: open http://localhost:${frontPort}; requests rotate over ${names.join(", ")} (PostgreSQL, prefix ${prefix})`
  )
  return yield* Effect.never
})

// One Ctrl-C reaches this process more than once (the terminal signals the process group, pnpm passes it on); the
// first interrupts the program, whose finalizers stop the front and the replicas; the others must not end it early.
const ignoreRepeatedSignal = () => {}
process.on("SIGINT", ignoreRepeatedSignal)
process.on("SIGTERM", ignoreRepeatedSignal)

NodeRuntime.runMain(Effect.scoped(program))
