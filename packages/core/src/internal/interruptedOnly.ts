import type { Cause } from "effect"

/**
 * `Cause.isInterruptedOnly`, by a walk of the cause: Effect's reduces it with allocations at each node, and every run
 * that thousands cancelled at once asks it on its way out.
 */
export const isInterruptedOnly = (cause: Cause.Cause<unknown>): boolean => {
  switch (cause._tag) {
    case "Empty":
    case "Interrupt":
      return true
    case "Sequential":
    case "Parallel":
      return isInterruptedOnly(cause.left) && isInterruptedOnly(cause.right)
    default:
      return false
  }
}
