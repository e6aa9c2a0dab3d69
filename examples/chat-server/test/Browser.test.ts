import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import * as Harness from "./support/harness.js"

const executablePath = "/usr/bin/chromium"
const hasChromium = fs.existsSync(executablePath)
const mustRun = process.env["CI"] === "true"
const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "test-artifacts")

if (!hasChromium && !mustRun) {
  console.warn(
    `SKIPPED the browser test: ${executablePath} is missing (apt-get update && apt-get install -y chromium). It runs in CI.`
  )
}

const launch = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({
      executablePath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run"
      ]
    })
  ),
  (browser) => Effect.promise(() => browser.close())
)

describe.skipIf(!hasChromium && !mustRun)("the chat page in Chromium", () => {
  it.scopedLive(
    "type a message, watch it stream, press Stop: the page shows the cancel and the order is never written",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ interval: 30, answerWords: 120 })
        const browser = yield* launch
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1280, height: 900 } }))
        const run = <A>(f: () => Promise<A>) => Effect.promise(f)

        yield* run(() => page.goto(harness.url))
        expect(yield* run(() => page.textContent("#model"))).toContain("offline fake")

        yield* run(() => page.fill("#message", "Find a quiet espresso grinder and order one"))
        yield* run(() => page.click("#send"))
        // The order is staged and the final answer streams, token by token.
        yield* run(() => page.waitForFunction(() => document.getElementById("staged")?.textContent === "1"))
        yield* run(() =>
          page.waitForFunction(() =>
            (document.querySelector(".msg.assistant")?.textContent ?? "").includes("Here is what I found")
          )
        )
        const before = (yield* run(() => page.textContent(".msg.assistant"))) ?? ""
        yield* run(() =>
          page.waitForFunction(
            (length) => (document.querySelector(".msg.assistant")?.textContent ?? "").length > length,
            before.length
          )
        )
        expect(Number((yield* run(() => page.textContent("#tokens")))!.split(" ")[0])).toBeGreaterThan(0)

        yield* run(() => page.click("#stop"))
        yield* run(() => page.waitForSelector("#outcome.Cancelled"))
        const outcome = (yield* run(() => page.textContent("#outcome"))) ?? ""
        expect(outcome).toContain("you pressed Stop")
        expect(outcome).toContain("1 write(s) rolled back")
        expect(yield* run(() => page.textContent("#state"))).toBe("cancelled")
        const activity = (yield* run(() => page.textContent("#activity"))) ?? ""
        expect(activity).toContain("rolled back 1 write(s)")
        expect(yield* run(() => page.locator("#orders li").count())).toBe(0)
        expect(yield* harness.orders.list).toEqual([])
        fs.mkdirSync(artifacts, { recursive: true })
        yield* run(() => page.screenshot({ path: path.join(artifacts, "chat-stopped.png"), fullPage: true }))

        // The next message continues the conversation; this time it completes and the order appears.
        yield* run(() => page.fill("#message", "Then order it after all"))
        yield* run(() => page.click("#send"))
        yield* run(() => page.waitForSelector("#outcome.Completed", { timeout: 30_000 }))
        yield* run(() => page.waitForFunction(() => document.querySelectorAll("#orders li").length === 1))
        expect(yield* harness.orders.list).toHaveLength(1)
        yield* run(() => page.screenshot({ path: path.join(artifacts, "chat-completed.png"), fullPage: true }))
      }),
    90_000
  )

  it.scopedLive(
    "closing the tab mid-run cancels the run with ClientDisconnected and rolls the order back",
    () =>
      Effect.gen(function* () {
        const harness = yield* Harness.start({ interval: 30, answerWords: 300 })
        const browser = yield* launch
        const context = yield* Effect.promise(() => browser.newContext())
        const page = yield* Effect.promise(() => context.newPage())
        const run = <A>(f: () => Promise<A>) => Effect.promise(f)
        yield* run(() => page.goto(harness.url))
        yield* run(() => page.fill("#message", "Order a desk lamp"))
        yield* run(() => page.click("#send"))
        yield* run(() => page.waitForFunction(() => document.getElementById("staged")?.textContent === "1"))
        const sessionId = ((yield* run(() => page.textContent("#session"))) ?? "").replace("session ", "")
        const cookie = (yield* run(() => context.cookies())).find((c) => c.name === "tether_caller")!

        yield* run(() => page.close())
        const status = yield* Harness.waitForStatus(
          harness,
          { cookie: `${cookie.name}=${cookie.value}` },
          sessionId,
          (s) => s.status === "ended"
        )
        expect(status.outcome).toMatchObject({
          _tag: "Cancelled",
          reason: { _tag: "ClientDisconnected" },
          writesRolledBack: 1
        })
        expect(yield* harness.orders.list).toEqual([])
      }),
    90_000
  )
})
