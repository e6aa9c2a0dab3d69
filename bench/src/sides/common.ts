/** What every side asks the model, so the requests on the wire are alike. */
import { FakeAnthropic } from "@tether/testing"

export const model = "claude-sonnet-4-6"
export const maxTokens = 1024
export const prompt = "hi"

/** The one tool of the two-turn run: it echoes its `text`. */
export const echoTool = { name: "echo", description: "Echoes" } as const

/**
 * The fake's script for the two-turn run: a user message gets a call of `echo`; a tool result gets a text answer.
 */
export const twoTurnScript = (request: FakeAnthropic.ScriptRequest): FakeAnthropic.Reply => {
  const last = request.body.messages.at(-1)
  const answered = typeof last?.content !== "string" && last?.content.some((block) => block.type === "tool_result")
  return answered ? FakeAnthropic.text("done") : FakeAnthropic.toolUse(echoTool.name, { text: "ping" })
}

/** Swallows the rejection of an aborted request: every side's abort ends its request with an error or an end. */
export const settle = (promise: Promise<unknown>): Promise<unknown> => promise.catch(() => undefined)
