// The plugdeck page: chat with steps beside it, pending actions, runs with their timeline, plugins,
// knowledge bases. Plain DOM: every piece of model, tool or user text goes in through textContent
// (el() below), never as HTML, and nothing here loads images or anything else from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { history: [], busy: false, agents: [], selectedRun: null };

// ---- DOM ---------------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function json(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

function money(cost) {
  return !cost ? "-" : `$${cost.toFixed(cost < 0.01 ? 5 : 3)}`;  // 0: the model has no prices set
}

const label = (text) => el("div", { class: "label" }, text);

// ---- API -----------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// The link `plugdeck serve` prints ends in #session=TOKEN: kept in this origin's storage and sent as a
// header, never as a cookie (a browser sends a host's cookies to every port of it, other servers included).
const signedIn = new URLSearchParams(location.hash.slice(1)).get("session");
if (signedIn) {
  localStorage.setItem("plugdeck-session", signedIn);
  history.replaceState(null, "", location.pathname + location.search);
}

function headers(extra) {
  const h = { "X-Requested-With": "plugdeck", ...extra };
  const key = sessionStorage.getItem("plugdeck-key");
  const session = localStorage.getItem("plugdeck-session");
  if (key) h.Authorization = `Bearer ${key}`;
  if (session) h["X-Plugdeck-Session"] = session;
  return h;
}

async function api(path, options = {}) {
  const init = { ...options, headers: headers(options.json ? { "Content-Type": "application/json" } : {}) };
  if (options.json) init.body = JSON.stringify(options.json);
  const response = await fetch(path, init);
  return readJson(response);
}

async function readJson(response) {
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    if (response.status === 401) showLogin();
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

// POST and read Server-Sent Events: onEvent(type, data) for each, until the server ends the stream.
async function stream(path, body, onEvent) {
  const response = await fetch(path, {
    method: "POST", body: JSON.stringify(body),
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
  });
  if (!response.ok || !response.body) return readJson(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(type, JSON.parse(data.join("\n")));
    }
  }
}

// ---- sign-in ----------------------------------------------------------------------------------------

function showLogin() {
  $("login").hidden = false;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("plugdeck-key", $("login-key").value.trim());
  $("login-key").value = "";
  try {
    await start();
    $("login").hidden = true;
    route();
  } catch (error) {
    sessionStorage.removeItem("plugdeck-key");
    $("login-error").textContent = error.message;
  }
});

// ---- views ----------------------------------------------------------------------------------------------

function route() {
  const path = location.pathname;
  const view = path.startsWith("/runs") ? "runs" : path === "/plugins" ? "plugins"
    : path === "/knowledge" ? "knowledge" : path.startsWith("/store") ? "store" : "chat";
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  const run = path.match(/^\/runs\/([0-9a-zA-Z]+)/);
  if (view === "runs") loadRuns(run ? run[1] : null);
  if (view === "plugins") loadPlugins();
  if (view === "knowledge") loadKnowledge();
  const pkg = path.match(/^\/store\/([a-z0-9-]+)\/([a-z0-9_-]+)$/);
  if (view === "store") loadStore(pkg ? `${pkg[1]}/${pkg[2]}` : null);
}

function go(path) {
  history.pushState(null, "", path);
  route();
}

document.querySelectorAll("nav a").forEach((a) => a.addEventListener("click", (event) => {
  if (a.dataset.external) return;
  event.preventDefault();
  go(a.getAttribute("href"));
}));
window.addEventListener("popstate", route);

// ---- chat -------------------------------------------------------------------------------------------------

// One question and its answer: the bubble, the steps beside it, and the pending actions.
class Turn {
  constructor(question) {
    this.question = question;
    this.runId = null;
    this.text = "";
    this.textStep = null;
    this.steps = {};
    $("messages").append(el("div", { class: "msg user" }, question));
    this.answerText = document.createTextNode("");
    this.meta = el("span", { class: "meta" }, "thinking…");
    // A reasoning model's thinking: dimmed, apart from the answer, never part of it.
    this.thinking = el("div", { class: "thinking", hidden: true });  // styled in app.css (the CSP allows no inline style)
    this.bubble = el("div", { class: "msg assistant" }, this.thinking, this.answerText, this.meta);
    this.actions = el("div");
    $("messages").append(this.bubble, this.actions);
    $("steps-empty").hidden = true;
    this.group = el("div", { class: "turn-steps" }, el("h4", {}, question.length > 80 ? `${question.slice(0, 79)}…` : question));
    $("steps").append(this.group);
  }

  handle(type, e) {
    if (type === "run_started") this.runId = e.run_id;
    else if (type === "text_delta" && e.channel === "text") {
      if (this.textStep !== null && this.textStep !== e.step) this.text += "\n\n";
      this.textStep = e.step;
      this.text += e.text;
      this.answerText.textContent = this.text;
    } else if (type === "text_delta" && e.channel === "reasoning") {
      this.thinking.hidden = false;
      this.thinking.textContent += e.text;
    } else if (type === "model_called") this.modelStep(e);
    else if (type === "tool_started") this.toolStep(e);
    else if (type === "tool_finished") this.toolDone(e);
    else if (type === "confirmation_requested") this.ask(e);
    else if (type === "confirmation_answered") this.answered(e);
    else if (type === "answer") { this.text = e.text; this.answerText.textContent = e.text; }
    else if (type === "run_finished") this.finished(e);
    else if (type === "settled" && e.status === "waiting") this.meta.textContent = "waiting for your approval";
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  modelStep(e) {
    const tokens = `${e.prompt_tokens}→${e.completion_tokens} tokens`;
    const body = [];
    const asked = e.tool_calls && e.tool_calls.length;
    // What the model said beside its tool calls; its answer is the bubble, once checked.
    if (e.text && asked) body.push(label("text"), el("pre", {}, e.text));
    if (asked) body.push(label("asked for"), el("pre", {}, json(e.tool_calls)));
    if (e.error) body.push(el("pre", { class: "error" }, e.error));
    this.group.append(el("details", { class: `step model${e.error ? " failed" : ""}` },
      el("summary", {}, `model call ${e.step}`, el("span", { class: "time" }, `${ms(e.latency)} · ${tokens}`)),
      ...body));
  }

  toolStep(e) {
    const time = el("span", { class: "time" }, "running…");
    const result = el("div");
    const node = el("details", { class: "step tool", open: true },
      el("summary", {}, `tool ${e.tool}`, time),
      label("arguments"), el("pre", {}, json(e.arguments)), result);
    this.steps[e.call_id] = { node, time, result };
    this.group.append(node);
  }

  toolDone(e) {
    const step = this.steps[e.call_id] || (this.toolStep(e), this.steps[e.call_id]);
    step.time.textContent = ms(e.latency);
    if (e.error) {
      step.node.classList.add("failed");
      step.result.append(label(`error (${e.error.kind})`), el("pre", { class: "error" }, e.error.message));
    } else {
      step.result.append(label(e.untrusted ? "result (outside data)" : "result"), el("pre", {}, json(e.result)));
    }
  }

  ask(e) {
    const card = pendingCard(this.runId, e, (type, data) => this.handle(type, data));
    this.actions.append(card);
    this.meta.textContent = "waiting for your approval";
  }

  answered(e) {
    const card = this.actions.querySelector(`[data-action="${CSS.escape(e.action_id)}"]`);
    if (card) decided(card, e.approved ? `approved by ${e.by}` : `rejected by ${e.by}${e.note ? ": " + e.note : ""}`);
  }

  finished(e) {
    if (e.status === "ok") state.history.push({ role: "user", content: this.question }, { role: "assistant", content: e.answer || "" });
    else if (e.error) this.answerText.textContent = `${this.text}${this.text ? "\n\n" : ""}${e.error}`;
    this.meta.textContent = "";
    this.meta.append(`${e.status} · ${e.tool_calls} tool call(s) · ${e.prompt_tokens}→${e.completion_tokens} tokens · ${ms(e.duration)} · `,
      el("a", { href: `/runs/${e.run_id}`, onclick: (ev) => { ev.preventDefault(); go(`/runs/${e.run_id}`); } }, "timeline"));
    this.meta.className = `meta status-${e.status}`;
  }
}

// A pending action: the exact tool and arguments, and the buttons that decide it.
function pendingCard(runId, e, onEvent) {
  const reason = el("input", { placeholder: "why not (optional)", "aria-label": "Reason" });
  const status = el("div", { class: "muted" });
  const decide = async (approve) => {
    card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    status.textContent = approve ? "approving…" : "rejecting…";
    try {
      await stream(`/api/runs/${encodeURIComponent(runId)}/actions/${encodeURIComponent(e.action_id || e.id)}`,
        { approve, reason: reason.value }, onEvent || (() => {}));
      status.textContent = approve ? "approved" : "rejected";
      decided(card, status.textContent);
      if (!onEvent) loadRun(runId);
    } catch (error) {
      status.textContent = error.message;
      card.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  };
  const card = el("div", { class: "pending", dataset: { action: e.action_id || e.id } },
    el("h4", {}, `Approve ${e.tool}?`),
    el("div", {}, e.reason || "this action changes something"),
    e.from_untrusted && e.from_untrusted.length
      ? el("div", { class: "warn" }, `copied from outside data: ${e.from_untrusted.join(", ")}`) : null,
    label("exact arguments"), el("pre", { class: "arguments" }, json(e.arguments)),
    label("what will be sent"), el("pre", {}, e.summary),
    el("div", { class: "buttons" },
      el("button", { class: "primary approve", onclick: () => decide(true) }, "Approve"),
      el("button", { class: "danger reject", onclick: () => decide(false) }, "Reject"), reason),
    status);
  return card;
}

function decided(card, text) {
  card.classList.add("decided");
  card.querySelectorAll("button, input").forEach((b) => { b.disabled = true; });
  const status = card.querySelector(".muted");
  if (status) status.textContent = text;
}

$("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.busy) return;
  state.busy = true;
  $("send").disabled = true;
  $("question").value = "";
  const turn = new Turn(question);
  const history = state.history.slice();
  try {
    await stream("/api/runs", { message: question, agent: $("agent").value || "plugdeck", history },
      (type, data) => turn.handle(type, data));
  } catch (error) {
    turn.meta.textContent = error.message;
    turn.meta.className = "meta error";
  } finally {
    state.busy = false;
    $("send").disabled = false;
  }
});

$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("ask-form").requestSubmit(); }
});

// ---- runs -------------------------------------------------------------------------------------------------

async function loadRuns(selected) {
  const rows = await api("/api/runs?limit=100");
  const body = $("runs-table").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => el("tr", {
    dataset: { run: r.id }, class: r.id === selected ? "selected" : null,
    onclick: () => go(`/runs/${r.id}`),
  },
  el("td", {}, new Date(r.started_at * 1000).toLocaleString()),
  el("td", { class: `status-${r.status}` }, r.status),
  el("td", {}, r.model || ""),
  el("td", {}, `${r.prompt_tokens || 0}→${r.completion_tokens || 0}`),
  el("td", {}, money(r.cost)),
  el("td", {}, r.question))));
  if (selected) await loadRun(selected);
  else $("run-detail").replaceChildren();
}

async function loadRun(runId) {
  const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
  const detail = $("run-detail");
  const finished = run.events.find((e) => e.type === "run_finished");
  detail.replaceChildren(...[
    el("h3", {}, run.question),
    el("div", { class: "facts" },
      el("span", { class: `status-${run.status}` }, run.status),
      el("span", {}, `run ${run.id}`),
      el("span", {}, run.model || ""),
      el("span", {}, `${run.prompt_tokens ?? run.usage?.prompt_tokens ?? 0}→${run.completion_tokens ?? run.usage?.completion_tokens ?? 0} tokens`),
      el("span", {}, `cost ${money(run.cost)}`),
      finished ? el("span", {}, ms(finished.duration)) : null),
    run.answer ? el("div", { class: "msg assistant answer" }, run.answer) : null,
    run.error ? el("div", { class: "error" }, run.error) : null,
    ...(run.pending || []).map((p) => pendingCard(run.id, p, null)),
    el("h4", {}, "Timeline"),
    timeline(run.events, finished ? finished.duration : null),
    el("h4", {}, "Events"),
    ...run.events.filter((e) => e.type !== "text_delta").map((e) => el("details", { class: "step" },
      el("summary", {}, `${e.type}`, el("span", { class: "time" }, ms(e.t))), el("pre", {}, json(e)))),
  ].filter(Boolean));
}

// The waterfall: one lane per model call, tool call and wait for a person, placed on the run's time.
function timeline(events, duration) {
  const spans = [];
  const started = {};
  const asked = {};
  for (const e of events) {
    if (e.type === "model_called") {
      spans.push({ kind: "model", label: `model call ${e.step} · ${e.prompt_tokens}→${e.completion_tokens} tokens`,
        start: Math.max(0, e.t - e.latency), end: e.t, failed: !!e.error });
    } else if (e.type === "tool_started") started[e.call_id] = e.t;
    else if (e.type === "tool_finished") {
      spans.push({ kind: "tool", label: e.tool, start: started[e.call_id] ?? e.t - e.latency, end: e.t, failed: !!e.error });
    } else if (e.type === "confirmation_requested") asked[e.action_id] = e;
    else if (e.type === "confirmation_answered" && asked[e.action_id]) {
      spans.push({ kind: "wait", label: `waiting for a person (${e.approved ? "approved" : "rejected"})`,
        start: asked[e.action_id].t, end: e.t });
      delete asked[e.action_id];
    }
  }
  const last = events.length ? events[events.length - 1].t : 0;
  for (const e of Object.values(asked)) spans.push({ kind: "wait", label: "waiting for a person", start: e.t, end: last });
  const total = Math.max(duration || 0, last, ...spans.map((s) => s.end), 1e-6);
  spans.sort((a, b) => a.start - b.start);
  return el("div", { class: "timeline" }, ...spans.map((s) => {
    const bar = el("div", { class: `bar bar-${s.kind}${s.failed ? " failed" : ""}`, title: `${s.label}: ${ms(s.end - s.start)}` });
    bar.style.left = `${(100 * s.start) / total}%`;
    bar.style.width = `${(100 * (s.end - s.start)) / total}%`;
    return el("div", { class: "lane" }, el("span", { class: "label" }, `${s.label} · ${ms(s.end - s.start)}`),
      el("div", { class: "track" }, bar));
  }));
}

// ---- plugins and knowledge --------------------------------------------------------------------------------------

async function loadPlugins() {
  const plugins = await api("/api/plugins");
  $("plugins").replaceChildren(...plugins.map((p) => el("div", { class: "plugin" },
    el("h3", {}, p.name, el("span", { class: "badge" }, p.version), el("span", { class: `badge ${p.effect}` }, p.effect)),
    el("div", { class: "muted" }, p.description || ""),
    ...p.tools.map((t) => el("details", { class: "tool" },
      el("summary", {}, `${p.name}.${t.name}`, el("span", { class: `badge ${t.effect}` }, t.effect),
        el("span", { class: "time" }, t.description)),
      el("pre", {}, json(t.parameters)))))));
  if (!plugins.length) $("plugins").append(el("p", { class: "muted" }, "No plugins."));
}

async function loadKnowledge() {
  const bases = await api("/api/kb");
  $("kb-list").replaceChildren(...bases.map((kb) => el("div", { class: "kb" },
    el("strong", {}, kb.name), ` · ${kb.documents} document(s) · ${kb.chunks} chunk(s)`)));
  if (!bases.length) $("kb-list").append(el("p", { class: "muted" }, "No knowledge bases yet: upload documents below."));
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("kb-name").value.trim();
  const form = new FormData();
  for (const file of $("kb-files").files) form.append("files", file);
  const report = $("upload-report");
  report.replaceChildren(el("p", { class: "muted" }, "reading and indexing…"));
  try {
    const response = await fetch(`/api/kb/${encodeURIComponent(name)}/documents`, { method: "POST", body: form, headers: headers() });
    const result = await readJson(response);
    report.replaceChildren(el("p", {}, `${result.knowledge_base}: ${result.counts.new} new, ${result.counts.changed} changed, ` +
      `${result.counts.unchanged} unchanged, ${result.counts.failed} failed, ${result.counts.skipped} skipped · ${result.chunks} chunk(s)`),
    ...result.files.map((f) => el("div", { class: ["failed", "skipped"].includes(f.status) ? "error" : "muted" },
      `${f.source}: ${f.status}${f.reason ? " (" + f.reason + ")" : ""}`)));
    loadKnowledge();
  } catch (error) {
    report.replaceChildren(el("p", { class: "error" }, error.message));
  }
});

// ---- plugin store (the operator's) -----------------------------------------------------------------------------

function permissionLines(p) {
  const limits = Object.entries(p.limits || {}).filter(([, v]) => v !== null && v !== undefined);
  return el("ul", { class: "permissions" },
    el("li", {}, `network: ${(p.network || []).join(", ") || "none"}`),
    el("li", {}, `secrets: ${(p.secrets || []).join(", ") || "none"}`),
    el("li", {}, `filesystem: ${p.filesystem || "none"}`),
    el("li", {}, `limits: ${limits.length ? limits.map(([k, v]) => `${k} ${v}`).join(", ") : "none declared"}`));
}

function chosenStore() {
  return $("store-select").value || null;
}

async function loadStore(pkg) {
  const stores = await api("/api/store/stores");
  const current = chosenStore();
  $("store-select").replaceChildren(...stores.map((s) => el("option", { value: s.name, selected: s.name === current }, s.name)));
  $("store-stores").replaceChildren(...stores.map((s) => el("div", { class: "store" },
    el("strong", {}, s.name), ` · ${s.url} · root `, el("code", {}, s.fingerprint))));
  if (!stores.length) $("store-stores").append(el("p", { class: "muted" }, "No store added yet: add one below."));
  if (pkg) await loadPackage(pkg);
  else $("store-package").replaceChildren();
}

$("store-add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("store-add");
  const url = $("store-url").value.trim();
  box.replaceChildren(el("p", { class: "muted" }, "fetching its root…"));
  try {
    const seen = await api("/api/store/stores/preview", { method: "POST", json: { url } });
    const name = $("store-name").value.trim() || seen.name;
    const trust = async () => {
      try {
        await api("/api/store/stores", { method: "POST", json: { url, name, fingerprint: seen.fingerprint } });
        box.replaceChildren(el("p", { class: "ok" }, `added ${name}`));
        loadStore(null);
      } catch (error) { box.replaceChildren(el("p", { class: "error" }, error.message)); }
    };
    box.replaceChildren(el("div", { class: "pending" },
      el("h4", {}, `Trust the store at ${seen.url} as ${name}?`),
      label("root fingerprint: compare it with the one its operator publishes"),
      el("pre", { class: "fingerprint" }, seen.fingerprint),
      el("div", { class: "buttons" }, el("button", { class: "primary", id: "store-trust", onclick: trust }, "Trust this root"))));
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
});

$("store-search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const params = new URLSearchParams({ q: $("store-q").value.trim() });
  if (chosenStore()) params.set("store", chosenStore());
  const box = $("store-results");
  try {
    const found = await api(`/api/store/search?${params}`);
    box.replaceChildren(...found.results.map((r) => el("div", { class: "plugin listing", dataset: { package: r.name } },
      el("h3", {}, el("a", { href: `/store/${r.name}`, onclick: (ev) => { ev.preventDefault(); go(`/store/${r.name}`); } }, r.name),
        el("span", { class: "badge" }, r.version), el("span", { class: "badge" }, r.kind)),
      el("div", { class: "muted" }, r.description || ""),
      el("div", {}, `tools: ${r.tools.map((t) => `${t.name} [${t.effect}]`).join(", ")}`))));
    if (!found.results.length) box.append(el("p", { class: "muted" }, "Nothing found."));
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
  }
});

async function loadPackage(name) {
  const box = $("store-package");
  const query = chosenStore() ? `?store=${encodeURIComponent(chosenStore())}` : "";
  let data;
  try {
    data = await api(`/api/store/packages/${name}${query}`);
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
    return;
  }
  const latest = data.versions.find((v) => v.version === data.latest) || data.versions[0];
  const consent = el("div", { id: "store-consent" });
  box.replaceChildren(
    el("h3", {}, data.name, el("span", { class: "badge" }, latest.kind)),
    el("div", { class: "facts" }, el("span", {}, `publisher: ${data.publisher}`), el("span", {}, `store: ${data.store}`),
      el("span", { id: "store-installed" }, data.installed ? `installed: ${data.installed.version}` +
        (data.installed.disabled ? ` (disabled: ${data.installed.disabled})` : "") : "not installed")),
    el("div", { class: "muted" }, latest.description || ""),
    el("h4", {}, "Tools"),
    ...latest.tools.map((t) => el("div", { class: "tool" }, `${t.name} `, el("span", { class: `badge ${t.effect}` }, t.effect),
      el("span", { class: "muted" }, ` ${t.description}`))),
    el("h4", {}, "Permissions"), permissionLines(latest.permissions),
    el("h4", {}, "Versions"),
    el("ul", { class: "versions" }, ...data.versions.map((v) => el("li", { dataset: { version: v.version } },
      `${v.version}${v.revoked ? ` (revoked: ${v.revoked})` : ""} · ${v.installs} install(s)`))),
    data.latest ? el("button", { class: "primary", id: "store-review", onclick: () => review(data, consent) },
      "Review and install…") : el("p", { class: "error" }, "every version is revoked"),
    consent);
}

// The consent step: the TUF-verified manifest, exactly what installing means, then the explicit OK.
async function review(data, box) {
  box.replaceChildren(el("p", { class: "muted" }, "verifying through the store's signed metadata…"));
  let shown;
  try {
    shown = await api("/api/store/consent", { method: "POST", json: { package: data.name, store: data.store, version: data.latest } });
  } catch (error) {
    box.replaceChildren(el("p", { class: "error" }, error.message));
    return;
  }
  const flagged = el("input", { type: "checkbox", id: "store-allow-flagged" });
  const status = el("div", { class: "muted", id: "store-install-status" });
  const install = async () => {
    status.textContent = "installing…";
    try {
      const done = await api("/api/store/install", { method: "POST", json: {
        package: shown.package, store: shown.store, version: shown.version,
        manifest_sha256: shown.manifest_sha256, allow_flagged: flagged.checked } });
      status.textContent = `installed ${done.package} ${done.version} as plugin ${done.plugin} (pinned in plugdeck.lock)`;
      status.className = "ok";
      card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    } catch (error) {
      status.textContent = error.message;
      status.className = "error";
    }
  };
  const card = el("div", { class: "pending consent" },
    el("h4", {}, `Install ${shown.package} ${shown.version}?`),
    el("div", {}, `${shown.kind} package from store ${shown.store}, signed by namespace ${shown.publisher}`),
    el("div", { class: "muted" }, shown.description),
    label("tools"),
    ...shown.tools.map((t) => el("details", { class: "tool" },
      el("summary", {}, `${t.name} `, el("span", { class: `badge ${t.effect}` }, t.effect), ` ${t.description}`),
      el("pre", {}, json(t.parameters)))),
    label("permissions"), permissionLines(shown.permissions),
    ...shown.findings.map((f) => el("div", { class: "warn" }, `scanner: ${f}`)),
    shown.blocking ? el("label", {}, flagged, " install although the scanner flags it") : null,
    el("div", { class: "buttons" },
      el("button", { class: "primary approve", id: "store-install", onclick: install }, "Install"),
      el("button", { class: "reject", onclick: () => box.replaceChildren() }, "Cancel")),
    status);
  box.replaceChildren(card);
}

// ---- start ---------------------------------------------------------------------------------------------------

async function start() {
  const session = await api("/api/session");
  $("who").textContent = session.principal;
  $("nav-store").hidden = !session.operator;  // the store's routes answer 403 to a key anyway
  $("agent").replaceChildren(...session.agents.map((name) => el("option", { value: name }, name)));
}

start().then(route).catch((error) => {
  if (error.status !== 401) $("who").textContent = error.message;
});
