import { ParseResult } from "effect"

/** A readable message for any failure a tool handler may produce. */
export const describeError = (error: unknown): string => {
  if (ParseResult.isParseError(error)) return ParseResult.TreeFormatter.formatErrorSync(error)
  if (typeof error === "object" && error !== null) {
    const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : undefined
    const message = "message" in error && typeof error.message === "string" ? error.message : undefined
    if (tag !== undefined && message !== undefined && message.length > 0) return `${tag}: ${message}`
    if (message !== undefined && message.length > 0) return message
    if (tag !== undefined) return `${tag}: ${safely(() => JSON.stringify(error))}`
  }
  return safely(() => String(error))
}

/** A description that cannot throw (a value with no usable `toString`, a cycle, a BigInt in JSON). */
const safely = (describe: () => string): string => {
  try {
    return describe()
  } catch {
    return "a value that cannot be shown as text"
  }
}
