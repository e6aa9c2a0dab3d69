/**
 * What a user's words ask to order, as the offline model reads them: "order
 * three kettles" is 3 × kettle, "Find a quiet espresso grinder under $300 and
 * order two" is 2 × quiet espresso grinder, and "then order it" takes the item
 * from an earlier message. Words that name no item fall back to the first
 * words left after the fillers, and to `fallbackItem` when none are left.
 *
 * @example
 * ```ts
 * import * as OrderWords from "./OrderWords.js"
 *
 * OrderWords.fromConversation(["Order three kettles"]) // { item: "kettle", quantity: 3 }
 * ```
 *
 * @since 0.1.0
 */
import { Array, Option, pipe } from "effect"

/** An item and how many of it. @since 0.1.0 */
export interface Wanted {
  readonly item: string
  readonly quantity: number
}

/** What one message says: either part may be missing ("order two", "buy it", "a kettle"). @since 0.1.0 */
export interface Mentioned {
  readonly item: Option.Option<string>
  readonly quantity: Option.Option<number>
}

/** The item when no message names one. @since 0.1.0 */
export const fallbackItem = "gift card"

/** The most `place_order` takes at once. @since 0.1.0 */
export const maxQuantity = 10

const numberWords: Record<string, number> = {
  one: 1,
  single: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  couple: 2,
  pair: 2,
  few: 3,
  dozen: 12
}

const verbs = new Set([
  "order",
  "buy",
  "get",
  "purchase",
  "find",
  "search",
  "look",
  "grab",
  "pick",
  "recommend",
  "suggest",
  "show",
  "want",
  "need",
  "add",
  "reorder",
  "tell",
  "give",
  "send",
  "bring"
])

/** Words skipped before the verb or the item. */
const fillers = new Set([
  "please",
  "can",
  "could",
  "would",
  "will",
  "you",
  "i",
  "i'd",
  "id",
  "i'm",
  "like",
  "to",
  "me",
  "us",
  "for",
  "up",
  "just",
  "also",
  "then",
  "now",
  "go",
  "ahead",
  "so",
  "ok",
  "okay",
  "hi",
  "hello",
  "hey",
  "let's",
  "lets",
  "what's",
  "whats",
  "what",
  "which",
  "is",
  "are",
  "there",
  "of",
  "x",
  "the",
  "some",
  "this",
  "these",
  "those",
  "my",
  "our",
  "any",
  "another",
  "more",
  "after",
  "all",
  "thanks",
  "thank"
])

/** Where an item's name ends: a price, a place, a purpose. */
const itemEnds = new Set([
  "under",
  "below",
  "over",
  "above",
  "for",
  "with",
  "without",
  "that",
  "which",
  "from",
  "at",
  "in",
  "on",
  "by",
  "within",
  "less",
  "cheaper",
  "around",
  "about",
  "near",
  "to",
  "please",
  "now",
  "today",
  "asap",
  "after",
  "if",
  "thanks"
])

/** Words that stand for an item named elsewhere. */
const pronouns = new Set(["it", "them", "one", "that", "this", "those", "these", "some", "more", "another"])

const isPrice = (word: string) => /^[$€£]|^\d+([.,]\d+)?(\$|usd|eur|dollars?|euros?)?$/i.test(word)

const words = (clause: string) =>
  clause
    .split(/\s+/)
    .map((word) => word.replace(/^[^\w$€£']+|[^\w']+$/g, ""))
    .filter((word) => word !== "")

/** "kettles" -> "kettle", "batteries" -> "battery", "boxes" -> "box", "glass" stays. */
const singular = (word: string) => {
  if (/[^aeiou]ies$/i.test(word)) return word.slice(0, -3) + (word.at(-1) === "S" ? "Y" : "y")
  if (/(ch|sh|ss|x|z)es$/i.test(word)) return word.slice(0, -2)
  if (/[^su]s$/i.test(word) && !/(is|us|ss)$/i.test(word)) return word.slice(0, -1)
  return word
}

interface Clause {
  readonly hasVerb: boolean
  readonly item: Option.Option<string>
  readonly quantity: Option.Option<number>
}

/** A count at `at`: "3", "three", "a dozen", "half a dozen", "a couple of", "a"; and how many words it took. */
const countAt = (lower: ReadonlyArray<string>, at: number): Option.Option<readonly [number, number, boolean]> => {
  const word = lower[at]
  if (word === undefined) return Option.none()
  if (/^\d+$/.test(word)) return Option.some([Number(word), 1, true])
  if (word === "half" && lower[at + 1] === "a" && lower[at + 2] === "dozen") return Option.some([6, 3, true])
  if (word === "a" || word === "an") {
    const next = numberWords[lower[at + 1] ?? ""]
    return next === undefined ? Option.some([1, 1, false]) : Option.some([next, 2, true])
  }
  const value = numberWords[word]
  return value === undefined ? Option.none() : Option.some([value, 1, true])
}

const readClause = (clause: string): Clause => {
  const original = words(clause)
  const lower = original.map((word) => word.toLowerCase())
  let at = 0
  let hasVerb = false
  for (; at < lower.length; at++) {
    if (verbs.has(lower[at]!)) hasVerb = true
    else if (!fillers.has(lower[at]!) && lower[at] !== "about") break
  }
  const count = countAt(lower, at)
  let quantity = Option.none<number>()
  let isCounted = false
  if (Option.isSome(count)) {
    const [value, taken, isExplicit] = count.value
    at += taken
    quantity = Option.some(value)
    isCounted = isExplicit
  }
  while (at < lower.length && fillers.has(lower[at]!) && !pronouns.has(lower[at]!)) at++
  const start = at
  while (at < lower.length && !itemEnds.has(lower[at]!) && !isPrice(lower[at]!)) at++
  const named = original.slice(start, at)
  const isPronoun = named.length === 0 || (named.length === 1 && pronouns.has(named[0]!.toLowerCase()))
  const item = isPronoun
    ? Option.none<string>()
    : Option.some((isCounted ? [...named.slice(0, -1), singular(named.at(-1)!)] : named).join(" ").slice(0, 80).trim())
  return { hasVerb, item, quantity: isCounted || Option.isSome(item) ? quantity : Option.none() }
}

/**
 * What one message names. Its clauses (split at "and", commas, "then") are
 * read in order; a clause with an ordering verb ("order", "buy", "find"...)
 * wins over one without.
 *
 * @since 0.1.0
 */
export const fromMessage = (message: string): Mentioned => {
  const clauses = message
    .split(/\s+(?:and|then|but)\s+|[,;.!?\n]+/i)
    .map(readClause)
    .filter((clause) => Option.isSome(clause.item) || Option.isSome(clause.quantity))
  const withVerb = clauses.filter((clause) => clause.hasVerb)
  const names = (clause: Clause) => Option.isSome(clause.item)
  const counts = (clause: Clause) => Option.isSome(clause.quantity)
  const item = pipe(
    Array.findFirst(withVerb, names),
    Option.orElse(() => Array.findFirst(clauses, names)),
    Option.flatMap((clause) => clause.item)
  )
  // "find a grinder and order two": the count of the last clause with a verb that gives one.
  const quantity = pipe(
    Array.findLast(withVerb, counts),
    Option.orElse(() => Array.findFirst(clauses, counts)),
    Option.flatMap((clause) => clause.quantity)
  )
  return { item, quantity }
}

/**
 * What a conversation asks to order, from its user messages (oldest first):
 * the item of the newest message that names one, the quantity of the newest
 * message that gives one (else of the message that named the item, else 1),
 * between 1 and `maxQuantity`.
 *
 * @since 0.1.0
 */
export const fromConversation = (messages: ReadonlyArray<string>): Wanted => {
  const read = messages.map(fromMessage).reverse()
  const named = Array.findFirst(read, (mentioned) => Option.isSome(mentioned.item))
  const latest = read[0]
  const quantity = pipe(
    Option.fromNullable(latest),
    Option.flatMap((mentioned) => mentioned.quantity),
    Option.orElse(() => Option.flatMap(named, (mentioned) => mentioned.quantity)),
    Option.getOrElse(() => 1)
  )
  return {
    item: pipe(
      named,
      Option.flatMap((mentioned) => mentioned.item),
      Option.getOrElse(() => fallbackItem)
    ),
    quantity: Math.min(Math.max(Math.round(quantity), 1), maxQuantity)
  }
}
