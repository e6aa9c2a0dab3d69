/**
 * The chat page: one HTML document with inline CSS and JS, no build step. It
 * posts a message and reads the run's Server-Sent Events with `fetch()` and a
 * stream reader, shows the answer as it streams, a live panel of what the run
 * does (turns, tools, subtasks, staged writes, tokens), a Stop button and how
 * the run ended (why, tokens, writes committed or rolled back); and the
 * committed orders. After a reload it shows the session as it is: the
 * conversation this tab showed, and the latest run rebuilt from the server's
 * events, re-attached if it is still going.
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
  /** In cluster mode, the replica that served the page: the page then shows which replica served each request. */
  readonly replica?: string | undefined
}

/** The page, with the model and storage labels filled in. @since 0.1.0 */
export const render = (labels: Labels): string =>
  template
    .replace("__MODEL_CLASS__", () => (labels.isOffline ? "offline" : "online"))
    .replace("__MODEL__", () => escapeHtml(labels.model))
    .replace("__STORAGE__", () => escapeHtml(labels.storage))
    .replace("__REPLICA__", () =>
      labels.replica === undefined
        ? ""
        : `<span id="replica" class="badge">page from ${escapeHtml(labels.replica)}</span>`
    )

/** The response header that names the replica that served a request (cluster mode). @since 0.1.0 */
export const replicaHeader = "x-tether-replica"

const template = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tether chat</title>
<link rel="icon" href="data:,">
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
  .msg.note { align-self: stretch; font-size: 13px; padding: 6px 10px; }
  .msg.note.Completed { background: #e5f6ea; color: var(--good); }
  .msg.note.Cancelled { background: #fff4e0; color: #8a5300; }
  .msg.note.Failed { background: #fdecea; color: var(--bad); }
  form { display: flex; gap: 8px; margin-top: 12px; }
  textarea { flex: 1; min-width: 0; resize: vertical; min-height: 44px; padding: 8px; font: inherit; border: 1px solid var(--line); border-radius: 8px; }
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
  #served { font-size: 12px; color: var(--muted); margin-top: 6px; }
  #served:empty { display: none; }
  #orders { font-size: 14px; margin: 0; padding-left: 18px; }
  #orders:empty::before { content: "No orders committed yet."; color: var(--muted); margin-left: -18px; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
  @media (max-width: 560px) {
    main { padding: 12px 10px; }
    form { flex-wrap: wrap; }
    textarea { flex-basis: 100%; }
    form button { flex: 1; }
  }
</style>
</head>
<body>
<header>
  <h1>Tether chat</h1>
  <span id="model" class="badge __MODEL_CLASS__">model: __MODEL__</span>
  <span id="storage" class="badge">storage: __STORAGE__</span>
  __REPLICA__
</header>
<main>
  <div>
    <section>
      <h2>Conversation</h2>
      <div id="messages" aria-live="polite"></div>
      <form id="composer">
        <textarea id="message" rows="2" placeholder="e.g. Find a quiet espresso grinder under $300 and order two" required></textarea>
        <button id="send" type="submit">Send</button>
        <button id="stop" type="button" disabled>Stop</button>
      </form>
      <div class="row">
        <label><input id="detach" type="checkbox"> keep the run going if this tab closes (detach)</label>
        <button id="new-chat" class="secondary" type="button">New chat</button>
        <span id="session"></span>
      </div>
      <div id="served" title="the replica that served each of the latest requests"></div>
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
  // In cluster mode every response names its replica (x-tether-replica): the latest few are listed under the form.
  var served = [];
  var fetchFromWindow = window.fetch.bind(window);
  function fetch(url, init) {
    return fetchFromWindow(url, init).then(function (response) {
      var replica = response.headers.get("x-tether-replica");
      if (replica !== null) {
        var parts = String(url).split("/");
        var path = parts[1] === "api" ? "/" + (parts[4] || "status") : String(url);
        served.push(((init && init.method) || "GET") + " " + path + " → " + replica);
        served = served.slice(-4);
        $("served").textContent = "served by: " + served.join(" · ");
      }
      return response;
    });
  }
  var reasons = {
    UserAbort: function () { return "you pressed Stop"; },
    ClientDisconnected: function () { return "the page was closed or reloaded while the run went on"; },
    Timeout: function (r) { return "it ran past its " + (r.millis / 1000) + " s deadline"; },
    BudgetExceeded: function (r) { return "it reached its token budget of " + r.ceiling; },
    Shutdown: function () { return "the server is shutting down"; },
    Superseded: function () { return "a newer message replaced it"; },
    Interrupted: function () { return "it was interrupted"; }
  };
  var sessionId = sessionStorage.getItem("tether-session") || newSessionId();
  // What this tab showed of the conversation: its messages and how each run ended. The latest run is rebuilt
  // from the server's events after a reload; the earlier ones come from here.
  var saved = load();
  var isLeaving = false;
  var isPinned = true;

  function newSessionId() {
    var id = "chat-" + Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    sessionStorage.setItem("tether-session", id);
    return id;
  }
  function load() {
    try {
      var value = JSON.parse(sessionStorage.getItem("tether-chat:" + sessionId) || "null");
      if (value && Array.isArray(value.exchanges)) return value;
    } catch (_) {}
    return { exchanges: [], detach: false };
  }
  function save() {
    try { sessionStorage.setItem("tether-chat:" + sessionId, JSON.stringify(saved)); } catch (_) {}
  }
  function lastExchange() { return saved.exchanges[saved.exchanges.length - 1] || null; }
  function plural(count, noun) { return count + " " + noun + (count === 1 ? "" : "s"); }
  function showSession() { $("session").textContent = "session " + sessionId; }

  // The conversation keeps its newest text in view, unless the user scrolled up to read.
  function keepNewestInView() {
    if (isPinned) $("messages").scrollTop = $("messages").scrollHeight;
  }
  $("messages").addEventListener("scroll", function () {
    var box = $("messages");
    isPinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  });
  function addMessage(role, text) {
    var el = document.createElement("div");
    el.className = "msg " + role;
    el.textContent = text;
    $("messages").appendChild(el);
    keepNewestInView();
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
    $("new-chat").disabled = running;
    document.body.dataset.state = state;
  }
  function resetPanel() {
    $("turns").textContent = "0";
    $("staged").textContent = "0";
    $("tokens").textContent = "0";
    $("run-id").textContent = "-";
    $("activity").textContent = "";
    $("outcome").className = "";
    $("outcome").textContent = "";
  }
  function brief(value) {
    var text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > 70 ? text.slice(0, 69) + "…" : text;
  }

  // How a run ended, from its terminal event or from GET /api/sessions/:id.
  function describeEnd(end) {
    // How many of the tokens were estimated (output that streamed after the model's last usage report).
    var estimated = end.tally ? end.tally.estimated : 0;
    var tokens = end.tokensUsed + " tokens" + (estimated > 0 ? " (" + estimated + " estimated)" : "");
    if (end._tag === "Completed") return "Completed · " + tokens + " · " + plural(end.writesCommitted || 0, "write") + " committed";
    var rolledBack = plural(end.writesRolledBack || 0, "write") + " rolled back";
    if (end._tag === "Failed") return "Failed: " + end.error + " · " + tokens + " · " + rolledBack;
    var tag = end.reason._tag;
    var why = reasons[tag] ? reasons[tag](end.reason) : tag;
    var head = tag === "Shutdown"
      ? "The server is shutting down; your run was cancelled (Shutdown)"
      : "Cancelled: " + why + " (" + tag + ")";
    return head + " · " + tokens + " · " + rolledBack;
  }
  function showEnd(end, exchange) {
    var text = describeEnd(end);
    $("outcome").className = end._tag;
    $("outcome").textContent = text;
    addMessage("note " + end._tag, text);
    setState(end._tag === "Completed" ? "completed" : end._tag === "Failed" ? "failed" : "cancelled");
    if (exchange) {
      exchange.outcome = { _tag: end._tag, text: text };
      save();
    }
  }

  // One run on the page: its answer, its panel, the last event shown.
  function newView(exchange) {
    resetPanel();
    return {
      exchange: exchange,
      answerEl: addMessage("assistant streaming", ""),
      rootAgent: null,
      turns: 0,
      staged: 0,
      committed: 0,
      lastSeq: 0,
      ended: null
    };
  }
  function onEvent(v, e) {
    if (typeof e.seq === "number") v.lastSeq = e.seq;
    var isSub = v.rootAgent !== null && e.agent !== v.rootAgent;
    switch (e._tag) {
      case "RunStarted":
        v.rootAgent = e.agent;
        $("run-id").textContent = e.runId;
        activity("run started");
        if (v.exchange && v.exchange.runId !== e.runId) { v.exchange.runId = e.runId; save(); }
        break;
      case "TurnStarted":
        if (!isSub) { v.turns += 1; $("turns").textContent = String(v.turns); }
        activity((isSub ? e.agent + ": " : "") + "turn " + e.turn, isSub);
        break;
      case "TextDelta":
        if (!isSub) { v.answerEl.textContent += e.text; keepNewestInView(); }
        break;
      case "TokensUsed":
        $("tokens").textContent = e.tokens + (e.ceiling ? " / " + e.ceiling : "") +
          (e.reservedInFlight > 0 ? " (+" + e.reservedInFlight + " reserved)" : "");
        break;
      case "ToolStarted":
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
        v.staged += 1;
        $("staged").textContent = String(v.staged);
        activity("✎ staged: " + e.description);
        break;
      case "Committed":
        v.staged = 0;
        v.committed = e.count;
        $("staged").textContent = "0 (" + e.count + " committed)";
        activity("✔ committed " + plural(e.count, "write"));
        break;
      case "RolledBack":
        v.staged = 0;
        $("staged").textContent = "0 (" + e.count + " rolled back)";
        activity("↺ rolled back " + plural(e.count, "write") + ": " + e.reason);
        break;
      case "RunCompleted":
        v.ended = { _tag: "Completed", tokensUsed: e.tokensUsed, tally: e.tally, writesCommitted: v.committed };
        break;
      case "RunCancelled":
        v.ended = { _tag: "Cancelled", reason: e.reason, tokensUsed: e.tokensUsed, tally: e.tally, writesRolledBack: e.writesRolledBack };
        v.answerEl.classList.add("stopped");
        break;
      case "RunFailed":
        v.ended = { _tag: "Failed", error: e.error, tokensUsed: e.tokensUsed, tally: e.tally, writesRolledBack: e.writesRolledBack };
        break;
    }
  }
  function handleFrame(v, frame) {
    var data = [];
    frame.split("\\n").forEach(function (line) {
      if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (data.length > 0) onEvent(v, JSON.parse(data.join("\\n")));
  }
  async function readEvents(v, response) {
    var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      buffer += chunk.value;
      var end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        handleFrame(v, buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }
  async function errorText(response) {
    try {
      var body = await response.json();
      if (response.status === 401) return "The server no longer knows this page (it restarted): reload the page.";
      return body.error ? body.error._tag + ": " + body.error.message : "HTTP " + response.status;
    } catch (_) {
      return "HTTP " + response.status;
    }
  }
  function eventsAfter(seq) {
    return fetch("/api/sessions/" + sessionId + "/events", { headers: { "last-event-id": String(seq) } });
  }
  // Shows a run's events from request (a fetch) to its end. When the stream breaks before the run's last event,
  // it picks up once after the last event it showed: the rest of the run, or how it ended.
  async function follow(v, request, isStart) {
    setState("running");
    var refusal = null;
    for (var attempt = 0; attempt < 2 && !v.ended && !isLeaving && refusal === null; attempt++) {
      try {
        var response = await (attempt === 0 ? request : eventsAfter(v.lastSeq));
        if (response.ok) await readEvents(v, response);
        else refusal = await errorText(response);
      } catch (_) {}
    }
    if (isLeaving) return;
    v.answerEl.classList.remove("streaming");
    if (v.answerEl.textContent === "" && !v.ended) v.answerEl.remove();
    if (refusal !== null && isStart && v.lastSeq === 0) {
      // The message started no run: it is not part of the conversation.
      saved.exchanges.splice(saved.exchanges.indexOf(v.exchange), 1);
      save();
    } else if (v.exchange) {
      v.exchange.answer = v.answerEl.isConnected ? v.answerEl.textContent : "";
      save();
    }
    if (v.ended) showEnd(v.ended, v.exchange);
    else if (refusal !== null) addMessage("error", refusal);
    else addMessage("error", "Connection lost: the server does not answer, so how this run ended is unknown. Reload the page to see.");
    if ($("state").textContent === "running") setState("idle");
    // A server that is shutting down has nothing more to list.
    if (!(v.ended && v.ended.reason && v.ended.reason._tag === "Shutdown")) refreshOrders();
  }
  async function send(message) {
    var detach = $("detach").checked;
    var exchange = { message: message, runId: null, answer: "", outcome: null };
    saved.exchanges.push(exchange);
    saved.detach = detach;
    save();
    isPinned = true;
    addMessage("user", message);
    var v = newView(exchange);
    await follow(v, fetch("/api/sessions/" + sessionId + "/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: message, disconnect: detach ? "detach" : "cancel" })
    }), true);
  }
  async function stop() {
    $("stop").disabled = true;
    try {
      var response = await fetch("/api/sessions/" + sessionId + "/cancel", { method: "POST" });
      if (!response.ok) addMessage("error", await errorText(response));
    } catch (_) {
      addMessage("error", "Connection lost: the server does not answer.");
    }
  }
  async function refreshOrders() {
    try {
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
    } catch (_) {}
  }
  function showExchange(exchange) {
    addMessage("user", exchange.message);
    if (exchange.answer) {
      var answer = addMessage("assistant", exchange.answer);
      if (exchange.outcome && exchange.outcome._tag !== "Completed") answer.classList.add("stopped");
    }
    if (exchange.outcome) addMessage("note " + exchange.outcome._tag, exchange.outcome.text);
  }
  // After a reload: the conversation as this tab showed it, then the latest run as the server has it: still
  // going (the page re-attaches to it) or ended (its events are replayed, and how it ended is shown).
  async function restore() {
    $("detach").checked = saved.detach;
    if (saved.exchanges.length === 0) return;
    var status = null;
    var isUnknown = false;
    try {
      var response = await fetch("/api/sessions/" + sessionId);
      if (response.ok) status = await response.json();
      else isUnknown = response.status === 403 || response.status === 404;
    } catch (_) {}
    if (status !== null && status.disconnect) $("detach").checked = status.disconnect === "detach";
    var last = lastExchange();
    var isKnownRun = status !== null && saved.exchanges.some(function (exchange) { return exchange.runId === status.runId; });
    var isLatestRun = status !== null && status.runId !== undefined &&
      (last.runId === status.runId || (last.runId === null && !last.outcome && !isKnownRun));
    saved.exchanges.slice(0, isLatestRun ? -1 : saved.exchanges.length).forEach(showExchange);
    if (isUnknown) {
      addMessage("error", "The server no longer knows this conversation (it restarted): your next message starts a new one.");
      sessionId = newSessionId();
      saved = { exchanges: [], detach: $("detach").checked };
      save();
      showSession();
      return;
    }
    if (status === null) {
      addMessage("error", "The server does not answer: this is the conversation as this tab last saw it.");
      return;
    }
    if (!isLatestRun) {
      if (last.runId === null && !last.outcome) addMessage("error", "This message started no run: the page reloaded before the server answered.");
      else if (!last.outcome) addMessage("error", "How this run ended is no longer known: the server forgot it or restarted.");
      return;
    }
    addMessage("user", last.message);
    var v = newView(last);
    activity(status.status !== "running"
      ? "↻ page reloaded: the run had ended; its events replayed"
      : status.disconnect === "detach"
        ? "↻ page reloaded: re-attached to the run, which went on (detach)"
        : "↻ page reloaded: the reload disconnected the run (cancel); its events replayed");
    await follow(v, eventsAfter(0), false);
  }

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var message = $("message").value.trim();
    if (message === "" || $("send").disabled) return;
    $("message").value = "";
    fitComposer();
    send(message);
  });
  $("message").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  // The message box grows with its text (and its placeholder, on a narrow screen), up to a third of the window.
  function fitComposer() {
    var box = $("message");
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight + 2, Math.max(window.innerHeight / 3, 64)) + "px";
  }
  $("message").addEventListener("input", fitComposer);
  window.addEventListener("resize", fitComposer);
  $("detach").addEventListener("change", function () { saved.detach = $("detach").checked; save(); });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", function () {
    sessionId = newSessionId();
    saved = { exchanges: [], detach: $("detach").checked };
    save();
    showSession();
    $("messages").textContent = "";
    resetPanel();
    setState("idle");
  });
  window.addEventListener("pagehide", function () { isLeaving = true; });
  showSession();
  setState("idle");
  fitComposer();
  refreshOrders();
  restore();
})();
</script>
</body>
</html>
`
