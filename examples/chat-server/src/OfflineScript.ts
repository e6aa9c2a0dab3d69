/**
 * What the offline model says: a `FakeAnthropic` script that plays the demo's
 * story for any question, over real HTTP and SSE. A question gets `research`,
 * then `ask_expert` (whose sub-agent request gets a short opinion), then
 * `place_order` of what the user's words ask for (`OrderWords`: "order three
 * kettles" orders 3 × kettle), then a long answer streamed word by word: long
 * enough to press Stop while the order is staged and see it rolled back.
 *
 * @example
 * ```ts
 * import { FakeAnthropic } from "@tether/testing"
 * import * as OfflineScript from "./OfflineScript.js"
 *
 * const fake = FakeAnthropic.start(OfflineScript.make({ interval: 80 }))
 * ```
 *
 * @since 0.1.0
 */
import { FakeAnthropic } from "@tether/testing"
import { expertSystem } from "./Assistant.js"
import * as OrderWords from "./OrderWords.js"

/** @since 0.1.0 */
export interface Options {
  /** Milliseconds between streamed words. Default 80. */
  readonly interval?: number | undefined
  /** Words of filler in the final answer. Default 90 (about 7 s at the default interval). */
  readonly answerWords?: number | undefined
}

type Request = FakeAnthropic.ScriptRequest["body"]
type Blocks = Exclude<Request["messages"][number]["content"], string>

const blocksOf = (content: Request["messages"][number]["content"]): Blocks =>
  typeof content === "string" ? [{ type: "text", text: content }] : content

const textOf = (blocks: Blocks) => blocks.flatMap((block) => (block.type === "text" ? [block.text] : [])).join(" ")

const shorten = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

const filler = [
  "Here is what I found.",
  "The sources agree on the main points, the expert's opinion matches them, and the order is staged in the",
  "same run as this answer: it is written to the database only when this answer ends. Press Stop now and",
  "watch the panel: the model's stream is aborted, the run's subtasks are interrupted, the staged order is",
  "rolled back, and the page shows the reason, the tokens used and the writes rolled back."
].join(" ")

const longAnswer = (question: string, words: number) => {
  const sentences = [`${filler} You asked: "${shorten(question, 80)}".`]
  const more = "Tether keeps every part of the run in one fiber tree, so one cancel reaches all of it."
  while (sentences.join(" ").split(" ").length < words) sentences.push(more)
  return sentences.join(" ")
}

/** The first user question of the conversation's last exchange. */
const lastQuestion = (messages: Request["messages"]) => {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!
    const text = message.role === "user" ? textOf(blocksOf(message.content)) : ""
    if (text.trim() !== "") return text
  }
  return "your question"
}

/** The user's own words in the conversation, oldest first (tool results are user messages without text). */
const userTexts = (messages: Request["messages"]) =>
  messages.flatMap((message) => {
    const text = message.role === "user" ? textOf(blocksOf(message.content)) : ""
    return text.trim() === "" ? [] : [text]
  })

/** The tool whose result is the last message, by its `tool_use` id in the message before. */
const answeredTool = (messages: Request["messages"]): string | undefined => {
  const last = messages.at(-1)
  if (last === undefined || last.role !== "user") return undefined
  const result = blocksOf(last.content).find((block) => block.type === "tool_result")
  if (result === undefined || result.type !== "tool_result") return undefined
  const previous = messages.at(-2)
  const use =
    previous === undefined
      ? undefined
      : blocksOf(previous.content).find((block) => block.type === "tool_use" && block.id === result.tool_use_id)
  return use?.type === "tool_use" ? use.name : "unknown"
}

/** The demo's script. @since 0.1.0 */
export const make =
  (options: Options = {}): FakeAnthropic.Script =>
  ({ body }) => {
    const interval = options.interval ?? 80
    const system = typeof body.system === "string" ? body.system : JSON.stringify(body.system ?? "")
    const question = lastQuestion(body.messages)
    if (system.startsWith(expertSystem.slice(0, 30))) {
      return FakeAnthropic.text(
        `Yes, that is a sound choice for "${shorten(question, 60)}": well reviewed, fairly priced, few complaints.`,
        { interval }
      )
    }
    switch (answeredTool(body.messages)) {
      case undefined:
        return FakeAnthropic.toolUse(
          "research",
          { topic: shorten(question, 120) },
          { preamble: "Let me research that first. ", interval }
        )
      case "research":
        return FakeAnthropic.toolUse(
          "ask_expert",
          { question: shorten(question, 200) },
          { preamble: "I found three sources. Let me ask an expert for a second opinion. ", interval }
        )
      case "ask_expert": {
        const { item, quantity } = OrderWords.fromConversation(userTexts(body.messages))
        return FakeAnthropic.toolUse(
          "place_order",
          { item, quantity },
          { preamble: `The expert agrees. I'm ordering ${quantity} × ${item} now. `, interval }
        )
      }
      default:
        return FakeAnthropic.text(longAnswer(question, options.answerWords ?? 90), { interval })
    }
  }
