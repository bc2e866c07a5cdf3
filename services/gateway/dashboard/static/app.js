// Call insights dashboard: a small front end over the gateway's /dashboard/api endpoints.
//
// Safety rule: every string from the data (partner, customer, transcript, analysis) reaches the
// page through textContent or a DOM property, never through innerHTML or a string of markup, so
// it can only ever show as text. The CSP allows no inline script, and no style attribute: styles
// are set through the CSSOM (element.style.x), which the CSP permits.

const API = "/dashboard/api";
const main = document.getElementById("main");
const form = document.getElementById("filters");
let session = null;
let charts = [];
let seq = 0; // the latest render; an older one that finishes late is dropped

// ---------------------------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const fmt = {
  num: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
  score: (n) => (n === null || n === undefined ? "–" : Number(n).toFixed(1)),
  pct: (r) => (r === null || r === undefined ? "–" : `${(100 * r).toFixed(1)}%`),
  clock(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const two = (v) => String(v).padStart(2, "0");
    return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
  },
  date: (iso) => (iso ? iso.slice(0, 10) : "–"),
  datetime: (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "–"),
  intent: (v) => (v ? v.replaceAll("_", " ").toLowerCase().replace(/^./, (c) => c.toUpperCase()) : "–"),
};

// ---------------------------------------------------------------------------------------------
// The host page: postMessage (size and navigation), only to the origin the server validated
// ---------------------------------------------------------------------------------------------

function tell(type, detail) {
  if (window.parent === window || !session || !session.embed_origin) return;
  window.parent.postMessage({ source: "callpipe-dashboard", type, ...detail }, session.embed_origin);
}

let lastHeight = 0;
function reportHeight() {
  // The content's own height (not the document's, which is at least the frame's): the host can
  // shrink the frame as well as grow it.
  const height = Math.ceil(document.body.getBoundingClientRect().height);
  if (height !== lastHeight) {
    lastHeight = height;
    tell("resize", { height });
  }
}

// ---------------------------------------------------------------------------------------------
// Routes and filters (kept in the URL fragment: a reload or a shared link keeps the view)
// ---------------------------------------------------------------------------------------------

const FILTERS = ["from", "to", "agent", "intent", "status", "score_band", "length_band"];

function parseRoute() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, query = ""] = raw.split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  const page = parts[0] || "overview";
  const callId = page === "call" ? decodeURIComponent(parts.slice(1).join("/")) : null;
  return { page, callId, params };
}

function hrefFor(page, params, callId) {
  const path = callId !== null && callId !== undefined ? `/call/${encodeURIComponent(callId)}` : `/${page}`;
  const q = params.toString();
  return `#${path}${q ? `?${q}` : ""}`;
}

function filterParams(params) {
  const out = new URLSearchParams();
  for (const key of FILTERS) if (params.get(key)) out.set(key, params.get(key));
  return out;
}

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

function defaultRange() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  return { from: isoDay(from), to: isoDay(to) };
}

function fillFilters(params) {
  const range = defaultRange();
  for (const key of FILTERS) {
    const field = form.elements[key];
    field.value = params.get(key) || (key === "from" ? range.from : key === "to" ? range.to : "");
    if (key === "agent" && session && session.agent_id) field.value = session.agent_id;
  }
}

function option(value, label) {
  return h("option", { value }, label);
}

function setupFilters() {
  const opts = session.options;
  const agent = form.elements.agent;
  if (session.agent_id) {
    agent.replaceChildren(option(session.agent_id, agentLabel(session.agent_id)));
    agent.disabled = true;
  } else {
    for (const a of session.agents) agent.append(option(a.id, agentLabel(a.id)));
  }
  for (const v of opts.intents) form.elements.intent.append(option(v, fmt.intent(v)));
  for (const v of opts.statuses) form.elements.status.append(option(v, fmt.intent(v)));
  for (const b of opts.score_bands) form.elements.score_band.append(option(String(b.value), b.label));
  for (const b of opts.length_bands) form.elements.length_band.append(option(String(b.value), b.label));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { page, params } = parseRoute();
    const next = new URLSearchParams();
    for (const key of FILTERS) {
      const value = form.elements[key].value;
      if (value && !(key === "agent" && session.agent_id)) next.set(key, value);
    }
    if (page === "calls" && params.get("q")) next.set("q", params.get("q"));
    location.hash = hrefFor(page === "call" ? "calls" : page, next);
  });
  document.getElementById("reset").addEventListener("click", () => {
    const { page } = parseRoute();
    location.hash = hrefFor(page === "call" ? "calls" : page, new URLSearchParams());
  });
}

function agentLabel(id) {
  const found = session.agents.find((a) => a.id === id);
  return found && found.name ? `${found.name} (${id})` : id;
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

class SessionExpired extends Error {}

async function api(path, params, init) {
  const url = params ? `${API}${path}?${params}` : `${API}${path}`;
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, ...init });
  if (response.status === 401) throw new SessionExpired();
  const body = await response.json().catch(() => ({ success: false, message: `HTTP ${response.status}` }));
  if (!response.ok || !body.success) {
    const detail = (body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    const error = new Error(detail ? `${body.message}: ${detail}` : body.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body.data;
}

function showExpired() {
  for (const c of charts) c.destroy();
  charts = [];
  main.replaceChildren(
    h("div", { class: "empty", role: "alert" },
      h("h1", { text: "Your dashboard session has ended" }),
      h("p", { text: "Sessions last 24 hours, and an administrator can end them. Reload the page in your application to open the dashboard again." })),
  );
  tell("session-expired", {});
}

// ---------------------------------------------------------------------------------------------
// Charts (Chart.js, served by the gateway; the pages still work without it)
// ---------------------------------------------------------------------------------------------

const PALETTE = ["#2459c7", "#1f7a4d", "#b42318", "#9a6700", "#6941c6", "#0e7490", "#c2410c", "#475467"];

function chart(label, summary, config) {
  const canvas = h("canvas", { role: "img", "aria-label": `${label}. ${summary}` });
  const box = h("div", { class: "chart" }, canvas);
  if (window.Chart) {
    config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...(config.options || {}) };
    for (const dataset of config.data.datasets) if (config.type === "bar") dataset.maxBarThickness = 36;
    charts.push(new window.Chart(canvas, config));
  } else {
    box.replaceChildren(h("p", { class: "muted", text: summary }));
  }
  return box;
}

function panel(title, ...children) {
  return h("section", { class: "panel", "aria-label": title }, h("h2", { text: title }), ...children);
}

function emptyState(title, lines, params, page) {
  const reset = h("button", { type: "button", class: "secondary" }, "Clear the filters");
  reset.addEventListener("click", () => { location.hash = hrefFor(page, new URLSearchParams()); });
  return h("div", { class: "empty", role: "status" },
    h("h2", { text: title }),
    ...lines.map((line) => h("p", { text: line })),
    filterParams(params).toString() || params.get("q") ? reset : null);
}

function rangeText(filters) {
  return `${filters.from} to ${filters.to}`;
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

async function overviewPage(params) {
  const data = await api("/overview", filterParams(params));
  const t = data.totals;
  const title = h("h1", { text: "Overview" });
  if (!t.calls) {
    return [title, emptyState(
      "No analysed calls to show yet",
      [`No call finished from ${rangeText(data.filters)} with these filters.`,
        "Calls appear here once they are analysed (or have failed). Widen the date range, clear the filters, or send calls through the ingestion API."],
      params, "overview")];
  }
  const cards = h("div", { class: "cards" },
    card("Calls", fmt.num(t.calls)), card("Completed", fmt.num(t.completed)), card("Failed", fmt.num(t.failed)),
    card("Average score", fmt.score(t.average_score)), card("Failed a fatal parameter", fmt.pct(t.fatal_failed_rate)),
    card("Average length", fmt.clock(t.average_duration_s)));
  const labels = data.series.map((p) => p.bucket);
  const per = data.bucket === "week" ? "per week" : "per day";
  const volume = chart(`Calls ${per}`, `${fmt.num(t.completed)} completed and ${fmt.num(t.failed)} failed calls.`, {
    type: "bar",
    data: { labels, datasets: [
      { label: "Completed", data: data.series.map((p) => p.completed), backgroundColor: PALETTE[1], stack: "s" },
      { label: "Failed", data: data.series.map((p) => p.failed), backgroundColor: PALETTE[2], stack: "s" },
    ] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const trend = chart(`Average quality score ${per}`, `Average score ${fmt.score(t.average_score)}.`, {
    type: "line",
    data: { labels, datasets: [{ label: "Average score", data: data.series.map((p) => p.average_score), borderColor: PALETTE[0], backgroundColor: PALETTE[0], spanGaps: true, tension: 0.2 }] },
    options: { scales: { y: { min: 0, max: 100 } }, plugins: { legend: { display: false } } },
  });
  const intents = data.intents.length
    ? chart("Intent mix", data.intents.map((i) => `${fmt.intent(i.intent)}: ${i.calls}`).join(", "), {
      type: "doughnut",
      data: { labels: data.intents.map((i) => fmt.intent(i.intent)), datasets: [{ data: data.intents.map((i) => i.calls), backgroundColor: PALETTE }] },
      options: { plugins: { legend: { position: "right" } } },
    })
    : h("p", { class: "muted", text: "No completed call in this selection." });
  const concerns = data.concerns.length
    ? chart("Top concern categories", data.concerns.map((c) => `${c.category}: ${c.calls}`).join(", "), {
      type: "bar",
      data: { labels: data.concerns.map((c) => c.category), datasets: [{ label: "Calls", data: data.concerns.map((c) => c.calls), backgroundColor: PALETTE[3] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    })
    : h("p", { class: "muted", text: "No objection was raised in these calls." });
  const bant = h("div", {}, ...data.bant.map((b) => {
    const ratio = b.of ? b.covered / b.of : 0;
    const fill = h("div", { class: "fill" });
    fill.style.width = `${(100 * ratio).toFixed(1)}%`;
    return h("div", { class: "meter" },
      h("span", { text: b.field.charAt(0).toUpperCase() + b.field.slice(1) }),
      h("div", { class: "bar", role: "img", "aria-label": `${b.field}: ${fmt.pct(ratio)}` }, fill),
      h("span", { class: "num", text: b.of ? fmt.pct(ratio) : "–" }));
  }));
  return [title,
    h("p", { class: "muted", text: `Finished calls from ${rangeText(data.filters)} (UTC days, by call start).` }),
    cards,
    h("div", { class: "panels" },
      panel(`Calls ${per}`, volume), panel("Average quality score", trend),
      panel("Intent mix", intents), panel("Top concern categories", concerns),
      panel("BANT coverage (share of completed calls where each was found)", bant),
      panel("Fatal parameters", h("p", {}, h("span", { class: "score-big", text: fmt.pct(t.fatal_failed_rate) })),
        h("p", { class: "muted", text: "of scored calls failed at least one fatal rubric parameter (scored below half of its maximum), which halves their score." })))];
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "label", text: label }), h("div", { class: "value", text: value }));
}

function sparkline(points, unit) {
  const values = points.map((p) => p.average_score).filter((v) => v !== null);
  const label = `${unit === "month" ? "Monthly" : "Weekly"} average score: ${values.map((v) => v.toFixed(0)).join(", ") || "none"}`;
  const box = svg("svg", { class: "spark", viewBox: "0 0 120 28", role: "img", "aria-label": label });
  if (values.length > 1) {
    const step = 116 / (values.length - 1);
    const coords = values.map((v, i) => `${(2 + i * step).toFixed(1)},${(26 - (v / 100) * 24).toFixed(1)}`);
    box.append(svg("polyline", { points: coords.join(" ") }));
    return box;
  }
  return h("span", { class: "muted", text: values.length ? `${values[0].toFixed(0)} (one ${unit})` : "–" });
}

async function agentsPage(params) {
  const data = await api("/agents", filterParams(params));
  const title = h("h1", { text: "Agents" });
  if (!data.agents.length) {
    return [title, emptyState("No agent has finished calls in this selection",
      [`Nothing from ${rangeText(data.filters)} with these filters. Agents appear once one of their calls is analysed or has failed.`],
      params, "agents")];
  }
  const team = data.team;
  const rows = data.agents.map((a) => {
    const toCalls = new URLSearchParams(filterParams(params));
    toCalls.set("agent", a.agent_id);
    const delta = team && a.average_score !== null && team.average_score !== null ? a.average_score - team.average_score : null;
    return h("tr", {},
      h("td", { class: "cell-text" },
        h("a", { href: hrefFor("calls", toCalls), "aria-label": `Calls of ${a.agent_name || a.agent_id}` }, a.agent_name || a.agent_id),
        h("div", { class: "muted", text: a.agent_id })),
      h("td", { class: "num", text: fmt.num(a.calls) }),
      h("td", { class: "num" }, fmt.score(a.average_score),
        delta === null ? null : h("div", { class: `delta ${delta >= 0 ? "up" : "down"}`, text: `${delta >= 0 ? "+" : ""}${delta.toFixed(1)} vs team` })),
      h("td", { class: "num", text: fmt.pct(a.talk_ratio) }),
      h("td", { class: "num", text: fmt.pct(a.fatal_failed_rate) }),
      h("td", {}, a.weakest.length
        ? h("ol", { class: "weak" }, ...a.weakest.map((p) => h("li", { class: "cell-text", text: `${p.parameter}: ${fmt.score(p.average)}%${p.team_average === null ? "" : ` (team ${fmt.score(p.team_average)}%)`}` })))
        : h("span", { class: "muted", text: "–" })),
      h("td", {}, sparkline(a.trend, data.trend_bucket)));
  });
  return [title,
    h("p", { class: "muted", text: team ? `Team average score ${fmt.score(team.average_score)} across ${team.agents} agents, ${rangeText(data.filters)}.` : `Your calls, ${rangeText(data.filters)}.` }),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden", text: "Agents" }),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "Agent" }), h("th", { scope: "col", class: "num", text: "Calls" }),
        h("th", { scope: "col", class: "num", text: "Average score" }), h("th", { scope: "col", class: "num", text: "Talk ratio (agent)" }),
        h("th", { scope: "col", class: "num", text: "Fatal failed" }), h("th", { scope: "col", text: "Weakest parameters" }),
        h("th", { scope: "col", text: data.trend_bucket === "month" ? "Monthly trend" : "Weekly trend" }))),
      h("tbody", {}, ...rows)))];
}

const SORTS = [["date", "Date"], ["duration", "Length"], ["score", "Score"]];

async function callsPage(params) {
  const query = filterParams(params);
  for (const key of ["q", "sort", "dir", "cursor"]) if (params.get(key)) query.set(key, params.get(key));
  const data = await api("/calls", query);
  const sort = params.get("sort") || "date";
  const dir = params.get("dir") || "desc";
  const search = h("input", { type: "search", name: "q", value: params.get("q") || "", placeholder: "Call id or customer", "aria-label": "Search by call id or customer (starts with)" });
  const searchForm = h("form", { class: "search", role: "search" }, search, h("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = filterParams(params);
    if (search.value.trim()) next.set("q", search.value.trim());
    if (params.get("sort")) next.set("sort", sort);
    if (params.get("dir")) next.set("dir", dir);
    location.hash = hrefFor("calls", next);
  });
  const exportParams = filterParams(params);
  if (params.get("q")) exportParams.set("q", params.get("q"));
  // Fetched, then saved from a blob: a download navigation would not carry the session cookie,
  // which the browser keeps partitioned to the embedding site.
  const exportLink = h("button", { type: "button", class: "secondary" }, "Export CSV");
  exportLink.addEventListener("click", async () => {
    exportLink.disabled = true;
    try {
      const response = await fetch(`${API}/export.csv?${exportParams}`, { credentials: "same-origin" });
      if (response.status === 401) { showExpired(); return; }
      if (!response.ok) throw new Error(`Export failed (HTTP ${response.status})`);
      const name = (response.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
      const url = URL.createObjectURL(await response.blob());
      const save = h("a", { href: url, download: name ? name[1] : "calls.csv" });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      main.append(h("p", { class: "notice error", role: "alert", text: error.message }));
    } finally {
      exportLink.disabled = false;
    }
  });
  const title = h("h1", { text: "Calls" });
  const toolbar = h("div", { class: "toolbar" }, searchForm, h("span", { class: "spacer" }), exportLink);
  if (!data.calls.length) {
    const lines = params.get("q")
      ? [`No call id or customer starts with “${params.get("q")}” from ${rangeText(data.filters)}.`]
      : [`No call started from ${rangeText(data.filters)} with these filters.`, "Calls appear here as soon as they are received."];
    return [title, toolbar, emptyState("No calls match", lines, params, "calls")];
  }
  const header = (key, label, numeric) => {
    const sortable = SORTS.find(([k]) => k === key);
    if (!sortable) return h("th", { scope: "col", class: numeric ? "num" : null, text: label });
    const active = sort === key;
    const next = new URLSearchParams(query);
    next.delete("cursor");
    next.set("sort", key);
    next.set("dir", active && dir === "desc" ? "asc" : "desc");
    const button = h("button", { type: "button", class: "sort" }, `${label}${active ? (dir === "desc" ? " ↓" : " ↑") : ""}`);
    button.addEventListener("click", () => { location.hash = hrefFor("calls", next); });
    return h("th", { scope: "col", class: numeric ? "num" : null, "aria-sort": active ? (dir === "desc" ? "descending" : "ascending") : "none" }, button);
  };
  const rows = data.calls.map((c) => {
    const link = h("a", { href: hrefFor("call", filterParams(params), c.call_id) }, c.call_id);
    const row = h("tr", { class: "clickable" },
      h("td", { text: fmt.datetime(c.started_at) }),
      h("td", { class: "cell-text" }, link),
      h("td", { class: "cell-text", text: c.agent_name || c.agent_id || "–" }),
      h("td", { class: "cell-text", text: c.customer_name || c.customer_id || "–" }),
      h("td", { class: "num", text: fmt.clock(c.duration_s) }),
      h("td", {}, h("span", { class: `status ${c.status}`, text: fmt.intent(c.status) })),
      h("td", { text: fmt.intent(c.intent) }),
      h("td", { class: "num", text: fmt.score(c.quality_score) }));
    row.addEventListener("click", (event) => { if (event.target.tagName !== "A") link.click(); });
    return row;
  });
  const pager = h("div", { class: "pager" });
  if (params.get("cursor")) {
    pager.append(h("button", { type: "button", class: "secondary", onclick: () => history.back() }, "Previous page"));
  }
  if (data.next_cursor) {
    const next = new URLSearchParams(query);
    next.set("cursor", data.next_cursor);
    pager.append(h("a", { class: "button", href: hrefFor("calls", next) }, "Next page"));
  }
  return [title, toolbar,
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden", text: "Calls" }),
      h("thead", {}, h("tr", {}, header("date", "Date"), header("id", "Call id"), header("agent", "Agent"), header("customer", "Customer"),
        header("duration", "Length", true), header("status", "Status"), header("intent", "Intent"), header("score", "Score", true))),
      h("tbody", {}, ...rows))),
    pager];
}

function facts(pairs) {
  const dl = h("dl", { class: "facts" });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(h("dt", { text: label }), h("dd", { class: "cell-text" }, value instanceof Node ? value : String(value)));
  }
  return dl;
}

async function callPage(params, callId) {
  const call = await api(`/calls/${encodeURIComponent(callId)}`);
  const back = h("a", { href: hrefFor("calls", filterParams(params)) }, "← All calls");
  const title = h("h1", { class: "cell-text" }, `Call ${call.call_id}`);
  const a = call.analysis;
  const left = h("div", {});
  const right = h("div", {});

  // The recording, synced to the transcript and the chapters.
  const player = panel("Recording");
  if (call.has_audio) {
    const audio = h("audio", { controls: true, preload: "metadata", src: `${API}/calls/${encodeURIComponent(call.call_id)}/audio` });
    audio.id = "player";
    player.append(audio);
    const duration = call.duration_s || 0;
    const timeline = h("div", { class: "timeline", "aria-label": "Chapters" });
    const playhead = h("div", { class: "playhead", "aria-hidden": "true" });
    timeline.append(playhead);
    const seek = (seconds) => { audio.currentTime = seconds; audio.play().catch(() => {}); };
    if (a && a.chapters.length && duration) {
      for (const chapter of a.chapters) {
        if (chapter.start === null) continue;
        const button = h("button", { type: "button", class: "chapter", title: chapter.name || "Chapter" }, chapter.name || "Chapter");
        button.style.left = `${Math.min(95, (100 * chapter.start) / duration).toFixed(2)}%`;
        button.addEventListener("click", () => seek(chapter.start));
        timeline.append(button);
      }
      player.append(timeline);
    }
    if (a && a.transcript.length) {
      const list = h("ol", { class: "transcript", "aria-label": "Transcript" });
      const items = a.transcript.map((seg) => {
        const li = h("li", {}, h("button", { type: "button", "aria-label": `Play from ${fmt.clock(seg.start)}: ${seg.speaker}` },
          h("span", { class: "time", text: fmt.clock(seg.start) }),
          h("span", { class: "speaker", text: seg.speaker }),
          h("span", { class: "cell-text", text: seg.text })));
        li.dataset.start = String(seg.start);
        li.dataset.end = String(seg.end);
        li.firstChild.addEventListener("click", () => seek(seg.start));
        list.append(li);
        return li;
      });
      audio.addEventListener("timeupdate", () => {
        const now = audio.currentTime;
        if (duration) playhead.style.left = `${Math.min(100, (100 * now) / duration).toFixed(2)}%`;
        for (const li of items) {
          const on = now >= Number(li.dataset.start) && now < Number(li.dataset.end);
          li.classList.toggle("current", on);
          if (on) li.setAttribute("aria-current", "true"); else li.removeAttribute("aria-current");
        }
      });
      player.append(h("h3", { text: "Transcript" }), list);
    }
  } else {
    const why = {
      failed: "The recording could not be fetched, so there is nothing to play.",
      processing: "The recording is not available yet.",
    }[call.status] || "The recording is not available.";
    player.append(h("p", { class: "muted", text: why }));
    if (a && a.transcript.length) {
      player.append(h("h3", { text: "Transcript" }), h("ol", { class: "transcript" }, ...a.transcript.map((seg) =>
        h("li", {}, h("button", { type: "button", disabled: true }, h("span", { class: "time", text: fmt.clock(seg.start) }), h("span", { class: "speaker", text: seg.speaker }), h("span", { class: "cell-text", text: seg.text }))))));
    }
  }
  left.append(player);

  if (a) {
    left.append(panel("Chapters", a.chapters.length
      ? h("ol", { class: "chapters-list" }, ...a.chapters.map((c) => h("li", {},
        h("strong", { class: "cell-text", text: c.name || "Chapter" }), c.start === null ? null : h("span", { class: "muted", text: ` (${fmt.clock(c.start)})` }),
        h("div", { class: "cell-text", text: c.summary || "" }))))
      : h("p", { class: "muted", text: "No chapters: there was no conversation to summarise." })));
    const quality = h("table", {}, h("thead", {}, h("tr", {}, h("th", { text: "Parameter" }), h("th", { class: "num", text: "Score" }), h("th", { text: "Justification" }), h("th", { text: "Suggestion" }))),
      h("tbody", {}, ...a.quality.map((q) => h("tr", {},
        h("td", { class: "cell-text" }, q.parameter_name || "–", q.is_fatal ? h("span", { class: "badge", text: "fatal" }) : null),
        h("td", { class: "num", text: q.inference_score === null ? "–" : `${q.inference_score} / ${q.parameter_score}` }),
        h("td", { class: "cell-text", text: q.justification || "" }),
        h("td", { class: "cell-text", text: q.suggestion || "" })))));
    left.append(panel("Scorecard", a.quality.length ? h("div", { class: "table-wrap" }, quality) : h("p", { class: "muted", text: "Not scored: there was no conversation." })));
  }

  right.append(panel("Call",
    facts([["Status", h("span", { class: `status ${call.status}`, text: fmt.intent(call.status) })], ["Started", fmt.datetime(call.started_at)],
      ["Length", fmt.clock(call.duration_s)], ["Agent", call.agent.name ? `${call.agent.name} (${call.agent.id})` : call.agent.id],
      ["Agent email", call.details.agent_email], ["Customer", call.customer.name ? `${call.customer.name} (${call.customer.id})` : call.customer.id],
      ["Customer email", call.details.customer_email], ["Contact number", call.details.contact_number],
      ["Disposition", call.details.disposition_status]]),
    call.error ? h("p", { class: "notice error", text: `Failed at ${call.error.stage}: ${call.error.message}` }) : null));
  if (a) {
    right.append(panel("Intent",
      h("p", {}, h("span", { class: "score-big", text: fmt.score(a.quality_score) }), h("span", { class: "muted", text: " quality score" })),
      facts([["Intent", fmt.intent(a.intent)], ["Why", a.intent_justification], ["Talk ratio (agent)", fmt.pct(a.talk_ratio)],
        ["Fatal parameter failed", a.fatal_failed === null ? null : a.fatal_failed ? "Yes" : "No"]])));
    const bant = a.bant || {};
    right.append(panel("BANT", facts([["Budget", bant.budget], ["Authority", bant.authority], ["Needs", bant.needs], ["Timeline", bant.timeline],
      ["Objection", bant.objection], ["Concern categories", bant.concern_categories], ["Objection handling", bant.objection_handling]])));
    right.append(panel("Qualification", a.qualification.length ? facts(a.qualification.map((q) => [q.label || "–", q.answer || "–"])) : h("p", { class: "muted", text: "No qualification labels." })));
  }
  const d = call.details;
  const partnerFacts = [
    ...Object.entries(d.metadata || {}).map(([k, v]) => [k, v]),
    ...(d.custom_fields || []).map((f) => [f.internal_name, f.value === null ? "–" : f.value]),
    ...Object.entries(d.extra || {}).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v]),
  ];
  if (partnerFacts.length) right.append(panel("Metadata and custom fields", facts(partnerFacts)));
  right.append(callbackPanel(call));
  return [back, title, h("div", { class: "detail" }, left, right)];
}

function callbackPanel(call) {
  const cb = call.callback;
  if (!cb) return panel("Callback", h("p", { class: "muted", text: "This call has no callback URL: its result is read through the API or this dashboard." }));
  const attempts = cb.attempts.length
    ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { text: "#" }), h("th", { text: "When" }), h("th", { class: "num", text: "HTTP" }), h("th", { class: "num", text: "ms" }), h("th", { text: "Error" }))),
      h("tbody", {}, ...cb.attempts.map((t) => h("tr", {},
        h("td", { text: t.number }), h("td", { text: fmt.datetime(t.started_at) }), h("td", { class: "num", text: t.status_code ?? "–" }),
        h("td", { class: "num", text: t.latency_ms === null ? "–" : Math.round(t.latency_ms) }), h("td", { class: "cell-text", text: t.error || "" }))))))
    : h("p", { class: "muted", text: "No delivery attempt yet." });
  const result = h("div", { "aria-live": "polite" });
  const children = [facts([["State", cb.state || "not reported yet"], ["URL", cb.url], ["Next attempt", cb.next_attempt_at ? fmt.datetime(cb.next_attempt_at) : null], ["Error", cb.error]]), h("h3", { text: "Delivery log" }), attempts];
  if (!session.read_only) {
    const button = h("button", { type: "button", id: "redeliver", disabled: !cb.redeliverable }, "Redeliver callback");
    if (!cb.redeliverable) button.title = "Available once the delivery is delivered or has failed";
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const data = await api(`/calls/${encodeURIComponent(call.call_id)}/redeliver`, null, {
          method: "POST",
          headers: { Accept: "application/json", "X-CSRF-Token": session.csrf_token },
        });
        result.replaceChildren(h("p", { class: "notice", text: `Redelivery requested at ${fmt.datetime(data.requested_at)}. New attempts appear in the log.` }));
      } catch (error) {
        if (error instanceof SessionExpired) { showExpired(); return; }
        result.replaceChildren(h("p", { class: "notice error", text: error.message }));
        button.disabled = false;
      }
    });
    children.push(h("p", {}, button), result);
  }
  return panel("Callback", ...children);
}

// ---------------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------------

const PAGES = { overview: overviewPage, agents: agentsPage, calls: callsPage };

async function render(event) {
  const mine = ++seq;
  const { page, callId, params } = parseRoute();
  const known = page === "call" ? "calls" : PAGES[page] ? page : "overview";
  for (const link of document.querySelectorAll(".top nav a")) {
    const href = hrefFor(link.dataset.page, filterParams(params));
    link.setAttribute("href", href);
    if (link.dataset.page === known) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  fillFilters(params);
  main.setAttribute("aria-busy", "true");
  try {
    const content = page === "call" ? await callPage(params, callId) : await (PAGES[page] || overviewPage)(params);
    const inContent = (c) => content.some((node) => node instanceof Node && node.contains(c.canvas));
    if (mine !== seq) {
      charts = charts.filter((c) => (inContent(c) ? (c.destroy(), false) : true));
      return;
    }
    charts = charts.filter((c) => (inContent(c) ? true : (c.destroy(), false)));
    main.replaceChildren(...content);
    // After a navigation inside the app, keyboard and screen-reader users land on the new page.
    if (event && event.type === "hashchange") main.focus({ preventScroll: true });
    document.title = `${page === "call" ? "Call" : known.charAt(0).toUpperCase() + known.slice(1)} · Call insights`;
  } catch (error) {
    if (mine !== seq) return;
    if (error instanceof SessionExpired) { showExpired(); return; }
    main.replaceChildren(h("div", { class: "empty", role: "alert" }, h("h2", { text: error.status === 404 ? "Not found" : "Something went wrong" }), h("p", { class: "error", text: error.message })));
  } finally {
    if (mine === seq) main.removeAttribute("aria-busy");
  }
  tell("navigate", { page: page === "call" ? "call" : known, call_id: callId, path: location.hash });
  requestAnimationFrame(reportHeight);
}

async function start() {
  try {
    session = await api("/session");
  } catch (error) {
    if (error instanceof SessionExpired) { showExpired(); return; }
    main.replaceChildren(h("p", { class: "error", text: error.message }));
    return;
  }
  const scope = document.getElementById("scope");
  scope.append(`${session.tenant_id} / ${session.subtenant_id}`);
  if (session.agent_id) scope.append(h("span", { class: "badge", text: `agent ${agentLabel(session.agent_id)}` }));
  if (session.read_only) scope.append(h("span", { class: "badge", text: "read-only" }));
  setupFilters();
  // The skip link must not touch the fragment: the fragment is the route.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", render);
  new ResizeObserver(reportHeight).observe(document.body);
  await render();
}

start();
