/**
 * The offline script: answers like a model, without a model. Re-exported by `FakeAnthropic`, where its exports are
 * documented.
 */
import { text, toolUse, type Reply, type ScriptRequest } from "./fakeAnthropicScript.js"

export interface OfflineOptions {
  /** Milliseconds between words (default 60). */
  readonly interval?: number
  /** Call the first offered tool before answering a user's text (default true). */
  readonly useTools?: boolean
}

const offlineFiller =
  "This answer comes from FakeAnthropic because no ANTHROPIC_API_KEY is set. It streams one word at a " +
  "time so you can watch it arrive, and press Stop at any moment: the request to the model ends at once " +
  "and nothing more is written."

const shorten = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

const sampleInput = (schema: Readonly<Record<string, unknown>>, userText: string): Record<string, unknown> => {
  const properties = (schema["properties"] ?? {}) as Record<string, { type?: unknown; enum?: ReadonlyArray<unknown> }>
  const required = Array.isArray(schema["required"]) ? (schema["required"] as Array<string>) : Object.keys(properties)
  const sample = (property: { type?: unknown; enum?: ReadonlyArray<unknown> } | undefined): unknown => {
    if (property?.enum !== undefined && property.enum.length > 0) return property.enum[0]
    switch (property?.type) {
      case "number":
      case "integer":
        return 1
      case "boolean":
        return true
      case "array":
        return []
      case "object":
        return {}
      default:
        return userText
    }
  }
  return Object.fromEntries(required.map((name) => [name, sample(properties[name])]))
}

export const offline =
  (options: OfflineOptions = {}): ((request: ScriptRequest) => Reply) =>
  (request) => {
    const interval = options.interval ?? 60
    const last = request.body.messages.at(-1)
    const blocks = last === undefined ? [] : typeof last.content === "string" ? [] : last.content
    const userText =
      typeof last?.content === "string"
        ? last.content
        : blocks.flatMap((block) => (block.type === "text" ? [block.text] : [])).join(" ")
    const results = blocks.flatMap((block) => (block.type === "tool_result" ? [block] : []))
    if (results.length > 0) {
      const answer = results.map((result) => (typeof result.content === "string" ? result.content : "…")).join("; ")
      return text(`The tool answered: ${shorten(answer, 120)}. ${offlineFiller}`, { interval })
    }
    const tool = request.body.tools?.[0]
    if ((options.useTools ?? true) && tool !== undefined && last?.role === "user") {
      return toolUse(tool.name, sampleInput(tool.input_schema, userText), {
        preamble: `Let me use ${tool.name} for that. `,
        interval
      })
    }
    return text(`You said: "${shorten(userText, 80)}". ${offlineFiller}`, { interval })
  }
