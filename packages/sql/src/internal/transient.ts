import type { SqlError } from "@effect/sql/SqlError"

/** The driver's error under a `SqlError`: node-postgres and better-sqlite3 errors carry a `code`. */
const codeOf = (error: SqlError): string | undefined => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null || !("code" in cause)) return undefined
  return typeof cause.code === "string" ? cause.code : undefined
}

const messageOf = (error: SqlError): string => {
  const cause: unknown = error.cause
  return cause instanceof Error ? cause.message : (error.message ?? "")
}

/** Socket errors of Node (`ECONNREFUSED`, `ECONNRESET`, `EPIPE`, ...): the database was not reached or went away. */
const socketCodes = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"])

/** What node-postgres says when its connection dropped or never opened (these errors have no code). */
const lostConnection =
  /connection terminated|not queryable|connection (error|closed)|timeout exceeded when trying to connect|failed to acquire connection/i

/**
 * The connection to the database failed: refused, reset, or ended by the server (PostgreSQL's class 08, connection
 * exception, and 57P01-57P03, the backend was terminated or the server shuts down or starts). The server's answer to
 * what was in flight is lost.
 */
export const isConnectionLost = (error: SqlError): boolean => {
  const code = codeOf(error)
  if (code === undefined) return lostConnection.test(messageOf(error)) || lostConnection.test(error.message ?? "")
  return socketCodes.has(code) || code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03"
}

/**
 * A failure after which running the same transaction again may succeed: the connection was lost, PostgreSQL
 * aborted it for a serialization failure or a deadlock (40001, 40P01), or SQLite's file was locked by another
 * connection (`SQLITE_BUSY`, `SQLITE_LOCKED`).
 */
export const isTransient = (error: SqlError): boolean => {
  const code = codeOf(error)
  return (
    isConnectionLost(error) ||
    code === "40001" ||
    code === "40P01" ||
    code?.startsWith("SQLITE_BUSY") === true ||
    code?.startsWith("SQLITE_LOCKED") === true
  )
}

/** The database's message for an error, for the message of a typed failure. */
export const describe = (error: SqlError): string => {
  const cause: unknown = error.cause
  if (cause instanceof Error) return cause.message
  return cause === undefined ? (error.message ?? "") : String(cause)
}
