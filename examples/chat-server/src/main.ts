/**
 * `pnpm start`: the chat server on `PORT` (default 3000), with the real
 * Anthropic API when `ANTHROPIC_API_KEY` is set and the offline fake otherwise,
 * SQLite in `.data/chat.db` unless `DATABASE_URL` names a PostgreSQL database.
 * Runs until Ctrl-C (or SIGTERM), then cancels running runs with `Shutdown`
 * and exits.
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option, Redacted } from "effect"
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

NodeRuntime.runMain(Layer.launch(main))
