/**
 * The chat page: one HTML document with inline CSS and JS, no build step. It
 * posts a message and reads the run's Server-Sent Events with `fetch()` and a
 * stream reader, shows the answer as it streams, a live panel of what the run
 * does (turns, tools, subtasks, staged writes, tokens), a Stop button and how
 * the run ended; and the committed orders.
 *
 * @example
 * ```ts
 * import * as Page from "./Page.js"
 *
 * const html = Page.render({ model: "offline fake", storage: "SQLite .data/chat.db" })
 * ```
 *
 * @since 0.1.0
 */

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!)

/** @since 0.1.0 */
export interface Labels {
  /** e.g. "offline fake" or "Anthropic API (claude-...)". */
  readonly model: string
  readonly isOffline: boolean
  readonly storage: string
}

/** The page, with the model and storage labels filled in. @since 0.1.0 */
export const render = (labels: Labels): string =>
  template
    .replace("__MODEL_CLASS__", () => (labels.isOffline ? "offline" : "online"))
    .replace("__MODEL__", () => escapeHtml(labels.model))
    .replace("__STORAGE__", () => escapeHtml(labels.storage))

const template = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tether chat</title>
<style>
  :root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ee; --accent: #3451d1; --bad: #b3261e; --good: #1b7f3b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7fb; }
  header { display: flex; gap: 12px; align-items: center; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0 8px 0 0; }
  .badge { font-size: 12px; padding: 3px 8px; border-radius: 999px; background: #eef1fb; color: var(--accent); }
  .badge.offline { background: #fff4e0; color: #8a5300; }
  .badge.online { background: #e5f6ea; color: var(--good); }
  main { display: grid; grid-template-columns: minmax(0, 1.6fr) minmax(280px, 1fr); gap: 16px; padding: 16px 20px; max-width: 1280px; margin: 0 auto; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 10px; }
  #messages { min-height: 260px; max-height: 55vh; overflow-y: auto; display: flex; flex-direction: column; gap: 10px; }
  .msg { padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
  .msg.user { align-self: flex-end; background: var(--accent); color: #fff; max-width: 80%; }
  .msg.assistant { align-self: flex-start; background: #f0f2f8; max-width: 95%; }
  .msg.assistant.streaming::after { content: "▍"; animation: blink 1s steps(1) infinite; }
  @keyframes blink { 50% { opacity: 0; } }
  .msg.assistant.stopped::after { content: " (stopped)"; color: #8a5300; font-style: italic; }
  .msg.error { background: #fdecea; color: var(--bad); }
  form { display: flex; gap: 8px; margin-top: 12px; }
  textarea { flex: 1; resize: vertical; min-height: 44px; padding: 8px; font: inherit; border: 1px solid var(--line); border-radius: 8px; }
  button { font: inherit; padding: 8px 14px; border-radius: 8px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
  button:disabled { opacity: .45; cursor: default; }
  button#stop { background: var(--bad); border-color: var(--bad); }
  button.secondary { background: #fff; color: var(--accent); }
  .row { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; font-size: 13px; color: var(--muted); margin-top: 8px; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 4px 10px; margin: 0 0 10px; font-size: 14px; }
  dt { color: var(--muted); }
  dd { margin: 0; font-variant-numeric: tabular-nums; }
  #activity { list-style: none; margin: 0; padding: 0; font-size: 13px; max-height: 30vh; overflow-y: auto; }
  #activity li { padding: 3px 0; border-bottom: 1px dashed var(--line); }
  #activity .sub { padding-left: 14px; color: var(--muted); }
  #outcome { margin-top: 10px; padding: 10px; border-radius: 8px; font-size: 14px; display: none; }
  #outcome.Completed { display: block; background: #e5f6ea; color: var(--good); }
  #outcome.Cancelled { display: block; background: #fff4e0; color: #8a5300; }
  #outcome.Failed { display: block; background: #fdecea; color: var(--bad); }
  #orders { font-size: 14px; margin: 0; padding-left: 18px; }
  #orders:empty::before { content: "No orders committed yet."; color: var(--muted); margin-left: -18px; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header>
  <h1>Tether chat</h1>
  <span id="model" class="badge __MODEL_CLASS__">model: __MODEL__</span>
  <span id="storage" class="badge">storage: __STORAGE__</span>
</header>
<main>
  <div>
    <section>
      <h2>Conversation</h2>
      <div id="messages" aria-live="polite"></div>
      <form id="composer">
        <textarea id="message" placeholder="e.g. Find a quiet espresso grinder under $300 and order one" required></textarea>
        <button id="send" type="submit">Send</button>
        <button id="stop" type="button" disabled>Stop</button>
      </form>
      <div class="row">
        <label><input id="detach" type="checkbox"> keep the run going if this tab closes (detach)</label>
        <button id="new-chat" class="secondary" type="button">New chat</button>
        <span id="session"></span>
      </div>
    </section>
  </div>
  <div>
    <section>
      <h2>What the run is doing</h2>
      <dl>
        <dt>state</dt><dd id="state">idle</dd>
        <dt>run</dt><dd id="run-id">-</dd>
        <dt>turns</dt><dd id="turns">0</dd>
        <dt>tokens</dt><dd id="tokens">0</dd>
        <dt>staged writes</dt><dd id="staged">0</dd>
      </dl>
      <ul id="activity"></ul>
      <div id="outcome" role="status"></div>
    </section>
    <section style="margin-top:16px">
      <h2>Committed orders</h2>
      <ol id="orders"></ol>
    </section>
  </div>
</main>
<script>
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var reasons = {
    UserAbort: "you pressed Stop",
    ClientDisconnected: "the client disconnected",
    Timeout: "the run passed its deadline",
    BudgetExceeded: "the token budget was reached",
    Shutdown: "the server is shutting down",
    Superseded: "a newer run replaced it",
    Interrupted: "it was interrupted"
  };
  var sessionId = sessionStorage.getItem("tether-session") || newSessionId();
  var answerEl = null;
  var rootAgent = null;
  var counters = { turns: 0, staged: 0 };
  var tools = {};

  function newSessionId() {
    var id = "chat-" + Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    sessionStorage.setItem("tether-session", id);
    return id;
  }
  function showSession() { $("session").textContent = "session " + sessionId; }
  function addMessage(role, text) {
    var el = document.createElement("div");
    el.className = "msg " + role;
    el.textContent = text;
    $("messages").appendChild(el);
    $("messages").scrollTop = $("messages").scrollHeight;
    return el;
  }
  function activity(text, isSub) {
    var li = document.createElement("li");
    li.textContent = text;
    if (isSub) li.className = "sub";
    $("activity").appendChild(li);
    $("activity").scrollTop = $("activity").scrollHeight;
  }
  function setState(state) {
    $("state").textContent = state;
    var running = state === "running";
    $("send").disabled = running;
    $("stop").disabled = !running;
    document.body.dataset.state = state;
  }
  function resetPanel() {
    counters = { turns: 0, staged: 0 };
    tools = {};
    rootAgent = null;
    $("turns").textContent = "0";
    $("staged").textContent = "0";
    $("tokens").textContent = "0";
    $("run-id").textContent = "-";
    $("activity").textContent = "";
    $("outcome").className = "";
    $("outcome").textContent = "";
  }
  function showOutcome(tag, text) {
    $("outcome").className = tag;
    $("outcome").textContent = text;
  }
  function tokenText(e) {
    var t = e.tally;
    return e.tokensUsed + " tokens (" + t.reportedInput + " in + " + t.reportedOutput + " out reported" +
      (t.estimated > 0 ? ", " + t.estimated + " estimated" : "") + ")";
  }
  function brief(value) {
    var text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > 70 ? text.slice(0, 69) + "…" : text;
  }
  function onEvent(e) {
    var isSub = rootAgent !== null && e.agent !== rootAgent;
    switch (e._tag) {
      case "RunStarted":
        rootAgent = e.agent;
        $("run-id").textContent = e.runId;
        activity("run started");
        break;
      case "TurnStarted":
        if (!isSub) { counters.turns += 1; $("turns").textContent = String(counters.turns); }
        activity((isSub ? e.agent + ": " : "") + "turn " + e.turn, isSub);
        break;
      case "TextDelta":
        if (!isSub && answerEl) { answerEl.textContent += e.text; $("messages").scrollTop = $("messages").scrollHeight; }
        break;
      case "TokensUsed":
        $("tokens").textContent = e.tokens + (e.ceiling ? " / " + e.ceiling : "") +
          (e.reservedInFlight > 0 ? " (+" + e.reservedInFlight + " reserved)" : "");
        break;
      case "ToolStarted":
        tools[e.toolUseId] = e.tool;
        activity("▶ " + e.tool + " " + brief(e.input), isSub);
        break;
      case "ToolSucceeded":
        activity("✓ " + e.tool + ": " + brief(e.output), isSub);
        break;
      case "ToolFailed":
        activity("✗ " + e.tool + ": " + brief(e.error), isSub);
        break;
      case "ToolInterrupted":
        activity("■ " + e.tool + " interrupted", isSub);
        break;
      case "ToolAbandoned":
        activity("⚠ " + e.tool + " ignored the cancel; abandoned after " + e.afterMillis + " ms", isSub);
        break;
      case "SubtaskStarted":
        activity("↳ subtask " + e.name + " started", true);
        break;
      case "SubtaskEnded":
        activity("↳ subtask " + e.name + " " + e.outcome, true);
        break;
      case "WriteStaged":
        counters.staged += 1;
        $("staged").textContent = String(counters.staged);
        activity("✎ staged: " + e.description);
        break;
      case "Committed":
        activity("✔ committed " + e.count + " write(s)");
        break;
      case "RolledBack":
        activity("↺ rolled back " + e.count + " write(s): " + e.reason);
        break;
      case "RunCompleted":
        showOutcome("Completed", "Completed · " + tokenText(e));
        setState("completed");
        break;
      case "RunCancelled":
        showOutcome("Cancelled", "Cancelled: " + (reasons[e.reason._tag] || e.reason._tag) + " · " + tokenText(e) +
          " · " + e.writesRolledBack + " write(s) rolled back");
        if (answerEl) answerEl.classList.add("stopped");
        setState("cancelled");
        break;
      case "RunFailed":
        showOutcome("Failed", "Failed: " + e.error + " · " + e.writesRolledBack + " write(s) rolled back");
        setState("failed");
        break;
    }
  }
  function handleFrame(frame) {
    var data = [];
    frame.split("\\n").forEach(function (line) {
      if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (data.length > 0) onEvent(JSON.parse(data.join("\\n")));
  }
  async function readEvents(response) {
    var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += chunk.value;
      var end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        handleFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }
  async function errorText(response) {
    try {
      var body = await response.json();
      return body.error ? body.error._tag + ": " + body.error.message : "HTTP " + response.status;
    } catch (_) {
      return "HTTP " + response.status;
    }
  }
  async function follow(responsePromise) {
    setState("running");
    answerEl = addMessage("assistant streaming", "");
    try {
      var response = await responsePromise;
      if (!response.ok) {
        answerEl.remove();
        addMessage("error", await errorText(response));
        setState("idle");
        return;
      }
      await readEvents(response);
    } catch (error) {
      addMessage("error", "connection lost: " + error.message);
    } finally {
      answerEl.classList.remove("streaming");
      if ($("state").textContent === "running") setState("idle");
      refreshOrders();
    }
  }
  async function send(message) {
    resetPanel();
    addMessage("user", message);
    await follow(fetch("/api/sessions/" + sessionId + "/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: message, disconnect: $("detach").checked ? "detach" : "cancel" })
    }));
  }
  async function stop() {
    $("stop").disabled = true;
    var response = await fetch("/api/sessions/" + sessionId + "/cancel", { method: "POST" });
    if (!response.ok) addMessage("error", await errorText(response));
  }
  async function refreshOrders() {
    var response = await fetch("/orders");
    if (!response.ok) return;
    var body = await response.json();
    var list = $("orders");
    list.textContent = "";
    body.orders.forEach(function (order) {
      var li = document.createElement("li");
      li.textContent = order.quantity + " × " + order.item + " (" + order.id + ")";
      list.appendChild(li);
    });
  }
  async function reattach() {
    var response = await fetch("/api/sessions/" + sessionId);
    if (!response.ok) return;
    var status = await response.json();
    if (status.status !== "running") return;
    resetPanel();
    activity("re-attached to a run that kept going");
    await follow(fetch("/api/sessions/" + sessionId + "/events?after=0"));
  }
  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var message = $("message").value.trim();
    if (message === "" || $("send").disabled) return;
    $("message").value = "";
    send(message);
  });
  $("message").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", function () {
    sessionId = newSessionId();
    showSession();
    $("messages").textContent = "";
    resetPanel();
    setState("idle");
  });
  showSession();
  setState("idle");
  refreshOrders();
  reattach();
})();
</script>
</body>
</html>
`
