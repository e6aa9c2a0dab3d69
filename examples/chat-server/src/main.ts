/**
 * `pnpm start`: the chat server on `PORT` (default 3000), with the real
 * Anthropic API when `ANTHROPIC_API_KEY` is set and the offline fake otherwise,
 * SQLite in `.data/chat.db` unless `DATABASE_URL` names a PostgreSQL database.
 * Writes one line per run start and end. Runs until Ctrl-C (or SIGTERM), then
 * cancels running runs with `Shutdown`, writes one line saying what it
 * cancelled and exits with 0.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import * as ChatServer from "./ChatServer.js"
import * as Model from "./Model.js"
import * as Storage from "./Storage.js"

const main = Layer.unwrapEffect(
  Effect.gen(function* () {
    // PORT=0 picks a free port (the tests use it); Config.port refuses 0.
    const port = yield* Config.integer("PORT").pipe(
      Config.validate({ message: "PORT must be 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
      Config.withDefault(3000)
    )
    const host = yield* Config.option(Config.string("HOST"))
    const secret = yield* Config.option(Config.redacted("SESSION_SECRET"))
    if (Option.isNone(secret)) {
      yield* Effect.logDebug("no SESSION_SECRET: visitors' cookies are signed with a key made for this process")
    }
    return ChatServer.layer({
      port,
      host: Option.getOrUndefined(host),
      secret: Option.getOrElse(secret, () => Redacted.make(randomBytes(32).toString("base64url")))
    })
  })
).pipe(Layer.provide(Model.layerFromEnv), Layer.provide(Storage.layerFromEnv))

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

NodeRuntime.runMain(Layer.launch(Layer.provide(main, logLevel)))
