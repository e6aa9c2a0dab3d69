/** Where `flatten` leaves the character it reads, so that no compiler drops the read. */
let sink = 0

/**
 * Flattens a string built by concatenation, in place, and returns it (reading a character does: V8 keeps a string
 * built with `+` as a tree of its pieces, 32 bytes each, until then). For strings a live run holds for its whole
 * life: its id, its spans' ids. The value is the same.
 */
export const flatten = (text: string): string => {
  sink ^= text.charCodeAt(0) | 0
  return text
}
