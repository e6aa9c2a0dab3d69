import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Agent, Message } from "@tether/core"
import { ScriptedModel } from "@tether/testing"
import { SessionClient as Client } from "@tether/testing"
import * as Harness from "./support/harness.js"

const userTexts = (messages: ReadonlyArray<Message.Message>) =>
  messages.filter((m) => m.role === "user" && m.content.some((b) => b.type === "text")).map(Message.text)

describe("conversation", () => {
  it.scopedLive("the next message continues the session's conversation, also after a Stop", () =>
    Effect.gen(function* () {
      const script: ScriptedModel.Script = (_request, index) =>
        index === 2
          ? ScriptedModel.text("y".repeat(400), { chunks: 100, delay: "50 millis" })
          : ScriptedModel.text(`Reply ${index}.`)
      const harness = yield* Harness.start({ script, agent: Agent.make({ name: "chat" }) })
      const send = (message: string) =>
        Client.openEventStream({
          port: harness.port,
          method: "POST",
          path: "/api/sessions/talk/messages",
          headers: Harness.alice,
          body: JSON.stringify({ message })
        })
      yield* Effect.flatMap(send("first"), (s) => s.ended)
      yield* Effect.flatMap(send("second"), (s) => s.ended)
      const third = yield* send("third")
      yield* third.waitFor((events) => events.some((e) => e.event === "TextDelta")).pipe(Effect.timeout("10 seconds"))
      const stop = yield* Client.requestJson({
        port: harness.port,
        method: "POST",
        path: "/api/sessions/talk/cancel",
        headers: Harness.alice
      })
      expect(stop.json.outcome._tag).toBe("Cancelled")
      yield* third.ended
      const fourth = yield* Effect.flatMap(send("fourth"), (s) => s.ended)
      expect(fourth.at(-1)?.event).toBe("RunCompleted")

      const requests = yield* harness.model.requests
      expect(requests).toHaveLength(4)
      expect(userTexts(requests[1]!.messages)).toEqual(["first", "second"])
      expect(Message.text(requests[1]!.messages[1]!)).toBe("Reply 0.")
      const last = requests[3]!.messages
      expect(userTexts(last)).toEqual(["first", "second", "third", "fourth"])
      // The stopped turn's partial answer stays in the conversation.
      expect(Message.text(last[last.length - 2]!)).toMatch(/^y+$/)

      const status = yield* Client.requestJson({
        port: harness.port,
        method: "GET",
        path: "/api/sessions/talk",
        headers: Harness.alice
      })
      expect(status.json).toMatchObject({
        status: "ended",
        messages: 8,
        outcome: { _tag: "Completed", text: "Reply 3." }
      })
    })
  )
})
