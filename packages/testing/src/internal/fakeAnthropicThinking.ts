import { createHash } from "node:crypto"
import type { WireRequest } from "./fakeAnthropicWire.js"

/**
 * The fake's signature of a thinking block: a hash of its text, so that a block sent back altered, or with another
 * block's signature, fails the check as it does on the real API.
 */
export const signatureOf = (thinking: string): string =>
  `fake-sig-${createHash("sha256").update(thinking).digest("base64url").slice(0, 24)}`

type Content = WireRequest["messages"][number]["content"]

const blocksOf = (content: Content) => (typeof content === "string" ? [] : content)

/**
 * What the real API refuses about thinking in a request that decoded: a thinking block whose signature does not
 * match, a budget that leaves no room in `max_tokens`, and, with thinking on, a tool loop continued without the
 * thinking of the assistant message that asked for the tools (it must come back, first, as the API sent it).
 */
export const thinkingIssue = (request: WireRequest): string | undefined => {
  for (const [m, message] of request.messages.entries()) {
    for (const [b, block] of blocksOf(message.content).entries()) {
      if (block.type === "thinking" && block.signature !== signatureOf(block.thinking)) {
        return `messages.${m}.content.${b}: Invalid \`signature\` in \`thinking\` block`
      }
    }
  }
  if (request.thinking?.type !== "enabled") return undefined
  if (request.thinking.budget_tokens >= request.max_tokens) {
    return "`max_tokens` must be greater than `thinking.budget_tokens`"
  }
  const last = request.messages.length - 1
  const isToolLoop = blocksOf(request.messages[last]?.content ?? []).some((block) => block.type === "tool_result")
  const asked = request.messages[last - 1]
  if (!isToolLoop || asked?.role !== "assistant") return undefined
  const first = blocksOf(asked.content)[0]
  return first?.type === "thinking" || first?.type === "redacted_thinking"
    ? undefined
    : `messages.${last - 1}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first?.type ?? "text"}\`. When \`thinking\` is enabled, an assistant message that asked for tools must start with its thinking block`
}
