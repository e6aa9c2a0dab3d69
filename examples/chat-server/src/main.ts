/**
 * `pnpm start`: the chat server on `PORT` (default 3000), with the real
 * Anthropic API when `ANTHROPIC_API_KEY` is set and the offline fake otherwise,
 * SQLite in `.data/chat.db` unless `DATABASE_URL` names a PostgreSQL database.
 * Cookies are signed with `SESSION_SECRET` (at least 32 bytes; a shorter one
 * stops the server with a line saying how to make one), and still accepted
 * when signed with `SESSION_SECRET_PREVIOUS` (comma-separated); without a
 * secret, outside `NODE_ENV=production`, a random one is made and the server
 * says so. `HEADERS_TIMEOUT`, `REQUEST_TIMEOUT` and `BODY_TIMEOUT` (durations,
 * e.g. `5 seconds`) cut slow clients off. `MAX_LIVE_RUNS` (runs going at once;
 * past it a start gets 503 with `Retry-After`), `MAX_QUEUED_STARTS` and
 * `QUEUE_TIMEOUT` (starts that may wait for a place, and how long) and
 * `LISTEN_BACKLOG` (default 4096) set the server's capacity. With `CLUSTER_RUNNER_PORT` set, the server is one
 * replica of a cluster on the PostgreSQL of `DATABASE_URL` (see `Cluster`). Writes one line per run start and
 * end. Runs until Ctrl-C (or SIGTERM), then cancels running runs with
 * `Shutdown`, writes one line saying what it cancelled and exits with 0.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Console, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { Auth } from "@tether/http"
import * as ChatServer from "./ChatServer.js"
import * as Cluster from "./Cluster.js"
import * as Model from "./Model.js"
import * as Storage from "./Storage.js"

/**
 * `SESSION_SECRET`, checked; without one, outside production, a random one, said so in one line. In production a
 * missing secret is refused like a short one.
 */
const sessionSecret = Effect.gen(function* () {
  const secret = yield* Config.option(Config.redacted("SESSION_SECRET"))
  const environment = yield* Config.string("NODE_ENV").pipe(Config.withDefault("development"))
  if (Option.isNone(secret) && environment !== "production") {
    yield* Console.log(
      "SESSION_SECRET is not set: cookies are signed with a random key for this process only (make one with: openssl rand -base64 32)"
    )
    return Redacted.make(randomBytes(32).toString("base64"))
  }
  const given = Option.getOrElse(secret, () => Redacted.make(""))
  yield* Auth.checkSecret(given, "SESSION_SECRET")
  return given
})

/** `SESSION_SECRET_PREVIOUS`: secrets rotated out, comma-separated, each checked. */
const previousSecrets = Effect.gen(function* () {
  const list = yield* Config.string("SESSION_SECRET_PREVIOUS").pipe(Config.withDefault(""))
  const secrets = list
    .split(",")
    .map((one) => one.trim())
    .filter((one) => one !== "")
    .map((one) => Redacted.make(one))
  yield* Effect.forEach(secrets, (one, i) => Auth.checkSecret(one, `SESSION_SECRET_PREVIOUS entry ${i + 1}`))
  return secrets
})

const main = Layer.unwrapEffect(
  Effect.gen(function* () {
    // PORT=0 picks a free port (the tests use it); Config.port refuses 0.
    const port = yield* Config.integer("PORT").pipe(
      Config.validate({ message: "PORT must be 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
      Config.withDefault(3000)
    )
    const host = yield* Config.option(Config.string("HOST"))
    const headersTimeout = yield* Config.option(Config.duration("HEADERS_TIMEOUT"))
    const requestTimeout = yield* Config.option(Config.duration("REQUEST_TIMEOUT"))
    const bodyTimeout = yield* Config.option(Config.duration("BODY_TIMEOUT"))
    const maxLiveRuns = yield* Config.option(Config.integer("MAX_LIVE_RUNS"))
    const maxQueuedStarts = yield* Config.option(Config.integer("MAX_QUEUED_STARTS"))
    const queueTimeout = yield* Config.option(Config.duration("QUEUE_TIMEOUT"))
    const backlog = yield* Config.option(Config.integer("LISTEN_BACKLOG"))
    const cluster = yield* Cluster.fromEnv
    const options: ChatServer.Options = {
      port,
      host: Option.getOrUndefined(host),
      secret: yield* sessionSecret,
      previousSecrets: yield* previousSecrets,
      server: {
        headersTimeout: Option.getOrUndefined(headersTimeout),
        requestTimeout: Option.getOrUndefined(requestTimeout)
      },
      limits: Option.match(bodyTimeout, { onNone: () => ({}), onSome: (timeout) => ({ bodyTimeout: timeout }) }),
      runs: {
        maxLiveRuns: Option.getOrUndefined(maxLiveRuns),
        maxQueuedStarts: Option.getOrUndefined(maxQueuedStarts),
        queueTimeout: Option.getOrUndefined(queueTimeout)
      },
      backlog: Option.getOrUndefined(backlog),
      replica: Option.getOrUndefined(Option.map(cluster, (one) => one.replica))
    }
    const single = ChatServer.layer(options).pipe(
      Layer.provide(Model.layerFromEnv),
      Layer.provide(Storage.layerFromEnv)
    )
    const replica = (one: Cluster.Options) =>
      ChatServer.layerWithRuns(options, Cluster.sessionRuns).pipe(
        Layer.provide(Cluster.layer(one)),
        Layer.provide(Model.layerFromEnv)
      )
    type Served = Layer.Layer<
      Layer.Layer.Success<typeof single>,
      Layer.Layer.Error<typeof single> | Layer.Layer.Error<ReturnType<typeof replica>>
    >
    return Option.match(cluster, { onNone: (): Served => single, onSome: (one): Served => replica(one) })
  })
)

// Under `pnpm start` one Ctrl-C reaches this process more than once: the terminal signals the whole process group,
// and pnpm passes SIGINT on (then SIGTERM, when it got two). `runMain` interrupts the server on the first and stops
// listening; the next one would then end the process by Node's default action, in the middle of the drain, before the
// open pages got their `RunCancelled`. Listening for the life of the process lets the drain finish; it is bounded
// (the shutdown deadline, then the forced close of the connections), so the process still exits, with 0.
const ignoreRepeatedSignal = () => {}
process.on("SIGINT", ignoreRepeatedSignal)
process.on("SIGTERM", ignoreRepeatedSignal)

// The example writes its own lines (`RunLog`); the library's log lines show from `LOG_LEVEL` (default warn) up.
const logLevel = Layer.unwrapEffect(
  Effect.map(Config.withDefault(Config.logLevel("LOG_LEVEL"), LogLevel.Warning), Logger.minimumLogLevel)
)

/** A secret that will not do stops the server with one line (and exit code 1), not a stack trace. */
const program = Layer.launch(Layer.provide(main, logLevel)).pipe(
  Effect.catchTag("SecretTooShort", (error) =>
    Console.error(`Cannot start: ${error.message}`).pipe(
      Effect.zipRight(Effect.sync(() => void (process.exitCode = 1)))
    )
  )
)

NodeRuntime.runMain(program)
