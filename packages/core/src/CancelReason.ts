/**
 * Why a run was cancelled. Every cancellation carries one of these into the
 * run's events, its log lines and its outcome.
 *
 * The reasons without fields skip Schema's validation when built (there is nothing to check): a Stop builds one right
 * before the abort, and cold, that check alone took about 80 us of the time to the socket's close.
 *
 * @example
 * ```ts
 * import { CancelReason } from "@tether/core"
 *
 * const reason = new CancelReason.UserAbort()
 * console.log(CancelReason.describe(reason)) // "the user pressed Stop"
 * ```
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"

/**
 * The user asked to stop (a Stop button, Ctrl-C).
 *
 * @since 0.1.0
 */
export class UserAbort extends Schema.TaggedClass<UserAbort>()("UserAbort", {}) {
  constructor() {
    super({}, true) // no fields: nothing to validate (see the module's note)
  }
}
/**
 * The client's connection closed before the run ended.
 *
 * @since 0.1.0
 */
export class ClientDisconnected extends Schema.TaggedClass<ClientDisconnected>()("ClientDisconnected", {}) {
  constructor() {
    super({}, true) // no fields: nothing to validate (see the module's note)
  }
}
/**
 * The run's deadline passed.
 *
 * @since 0.1.0
 */
export class Timeout extends Schema.TaggedClass<Timeout>()("Timeout", { millis: Schema.Number }) {}
/**
 * The run tree would have spent more tokens than its budget allows: either what it used crossed the `ceiling`
 * (`used`, of which `estimated` Tether estimated, the rest as the provider reported it), or the next turn did not
 * fit (`used` plus `reservedInFlight` by other turns plus the `needed` of the refused turn, its input estimate and
 * one output token, is over the ceiling).
 *
 * @since 0.1.0
 */
export class BudgetExceeded extends Schema.TaggedClass<BudgetExceeded>()("BudgetExceeded", {
  ceiling: Schema.Number,
  used: Schema.Number,
  estimated: Schema.optional(Schema.Number),
  reservedInFlight: Schema.optional(Schema.Number),
  needed: Schema.optional(Schema.Number)
}) {}
/**
 * The process is shutting down.
 *
 * @since 0.1.0
 */
export class Shutdown extends Schema.TaggedClass<Shutdown>()("Shutdown", {}) {
  constructor() {
    super({}, true) // no fields: nothing to validate (see the module's note)
  }
}
/**
 * A newer run started for the same session.
 *
 * @since 0.1.0
 */
export class Superseded extends Schema.TaggedClass<Superseded>()("Superseded", {}) {
  constructor() {
    super({}, true) // no fields: nothing to validate (see the module's note)
  }
}
/**
 * The run's fiber was interrupted from outside Tether without a recorded reason
 * (for example by a plain `Fiber.interrupt`).
 *
 * @since 0.1.0
 */
export class Interrupted extends Schema.TaggedClass<Interrupted>()("Interrupted", {}) {
  constructor() {
    super({}, true) // no fields: nothing to validate (see the module's note)
  }
}

/**
 * In cluster mode, the replica that owned the run stopped heartbeating (killed, partitioned, or its database
 * connection lost) for longer than the bound, and a sweeper ended the run in its place: `owner` names that replica.
 * Such a run is never restarted (a second execution would bill tokens and stage writes again), and it can no longer
 * commit: its writes are lost with it.
 *
 * @since 0.1.0
 */
export class LostReplica extends Schema.TaggedClass<LostReplica>()("LostReplica", { owner: Schema.String }) {}

/** @since 0.1.0 */
export const CancelReason = Schema.Union(
  UserAbort,
  ClientDisconnected,
  Timeout,
  BudgetExceeded,
  Shutdown,
  Superseded,
  Interrupted,
  LostReplica
)

/** @since 0.1.0 */
export type CancelReason = typeof CancelReason.Type

const describeBudget = ({ ceiling, estimated, needed, reservedInFlight, used }: BudgetExceeded): string => {
  if (needed !== undefined) {
    const inFlight = reservedInFlight ? `, ${reservedInFlight} reserved by turns in flight` : ""
    return (
      `the token budget of ${ceiling} has no room for the next turn: ${used} used${inFlight}, ` +
      `and the turn needs ${needed} (its estimated input and one output token)`
    )
  }
  const split =
    estimated === undefined
      ? ""
      : estimated === 0
        ? " (all as the model reported them)"
        : ` (${used - estimated} as the model reported them, ${estimated} estimated by Tether)`
  return `the token budget of ${ceiling} was exceeded: ${used} used${split}`
}

/**
 * A short human sentence for logs and pages.
 *
 * @since 0.1.0
 */
export const describe = (reason: CancelReason): string => {
  switch (reason._tag) {
    case "UserAbort":
      return "the user pressed Stop"
    case "ClientDisconnected":
      return "the client disconnected"
    case "Timeout":
      return `the run passed its ${reason.millis} ms deadline`
    case "BudgetExceeded":
      return describeBudget(reason)
    case "Shutdown":
      return "the server is shutting down"
    case "Superseded":
      return "a newer run replaced it"
    case "Interrupted":
      return "it was interrupted"
    case "LostReplica":
      return `the replica that ran it (${reason.owner}) was lost`
  }
}

/**
 * Whether `u` is an instance of one of the reasons (no Schema work: it is checked on the way to an abort).
 *
 * @since 0.1.0
 */
export const isCancelReason = (u: unknown): u is CancelReason =>
  u instanceof UserAbort ||
  u instanceof ClientDisconnected ||
  u instanceof Timeout ||
  u instanceof BudgetExceeded ||
  u instanceof Shutdown ||
  u instanceof Superseded ||
  u instanceof Interrupted ||
  u instanceof LostReplica

const decodeUnknownOption = Schema.decodeUnknownOption(CancelReason)

/**
 * Decodes a value that may be a `CancelReason` (e.g. an `AbortSignal`'s reason); anything else, however odd, is
 * `None` (Schema's parser itself throws for a `_tag` without a usable `toString`).
 *
 * @since 0.1.0
 */
export const decodeOption = (u: unknown): Option.Option<CancelReason> => {
  try {
    return decodeUnknownOption(u)
  } catch {
    return Option.none()
  }
}
