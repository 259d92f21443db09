// agentos dashboard: renders /api/runs and /api/runs/{id}, refreshed on each server-sent
// "change" event from /api/events. Everything from the run store is inserted as text
// (textContent), never as HTML.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const state = { selected: null, pinned: false, busy: false, again: false, shown: null, offset: 0 };
  const path = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
  if (path) { state.selected = decodeURIComponent(path[1]); state.pinned = true; }

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, String(v));
      else if (k === "title") node.title = String(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  }

  // Same text as Python's f"{x:,.{d}f}" (kind "fixed") and f"{x:.{d}e}" (kind "exp").
  function fmt(value, format) {
    if (value === null || value === undefined) return "–";
    const x = Number(value);
    if (format.kind === "exp") {
      return x.toExponential(format.digits).replace(/e([+-])(\d)$/, "e$10$2");
    }
    return x.toLocaleString("en-US", {
      minimumFractionDigits: format.digits, maximumFractionDigits: format.digits,
    });
  }
  const INT = { kind: "fixed", digits: 0 };
  const SEC = { kind: "fixed", digits: 3 };
  const MS = { kind: "fixed", digits: 2 };

  function stamp(t) {
    const d = new Date(t * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

  function numCell(key, value, format) {
    return el("td", { class: "num", "data-col": key, "data-value": value ?? "" }, fmt(value, format));
  }

  function head(table, columns) {
    const row = el("tr");
    for (const [label, numeric] of columns) row.append(el("th", { class: numeric ? "num" : null }, label));
    table.tHead.replaceChildren(row);
  }

  // Metrics shown in tables: everything but the prompt/completion split (tokens is their sum).
  const shown = (metrics) => metrics.filter((m) => !m.key.endsWith("_tokens"));

  function renderRuns(data) {
    $("store").textContent = `run store ${data.store}`;
    const table = $("runs");
    const metrics = shown(data.metrics);
    head(table, [["id"], ["name"], ["status"], ["started"], ["seconds", 1], ["syscalls", 1],
      ["tokens", 1], ...metrics.map((m) => [m.label, 1]), ["task"]]);
    const rows = data.runs.map((r) => {
      const seconds = r.duration_s ?? (r.shown_status === "running" ? data.now - r.started_at : null);
      const row = el("tr", { "data-run-id": r.id, class: r.id === state.selected ? "selected" : null },
        el("td", { "data-col": "id" }, el("a", { href: `/runs/${encodeURIComponent(r.id)}` }, r.id)),
        el("td", { "data-col": "name" }, r.name),
        el("td", { "data-col": "status" }, statusBadge(r)),
        el("td", { "data-col": "started" }, stamp(r.started_at)),
        numCell("seconds", seconds, { kind: "fixed", digits: 1 }),
        numCell("syscalls", r.totals.syscalls, INT),
        numCell("tokens", r.totals.tokens, INT),
        ...metrics.map((m) => numCell(m.key, r.totals[m.key], m.format)),
        el("td", { class: "task-cell", "data-col": "task", title: r.task ?? "" }, clip(r.task ?? "", 80)));
      row.addEventListener("click", (event) => {
        if (event.target.closest("a")) event.preventDefault();
        state.selected = r.id;
        state.pinned = true;
        history.pushState(null, "", `/runs/${encodeURIComponent(r.id)}`);
        refresh();
      });
      return row;
    });
    table.tBodies[0].replaceChildren(...rows);
    if (!data.runs.length) {
      table.tBodies[0].append(el("tr", {}, el("td", { colspan: 8 },
        "No runs yet: start one (agentos run, agentos crew run, or Agent.run in Python) and it appears here.")));
    }
  }

  function statusBadge(r, id) {
    const gone = r.shown_status !== r.status;
    return el("span", {
      id, class: `status ${r.shown_status}`,
      title: gone ? `stored as ${r.status}, but its process ${r.pid} is gone: it was killed before it ` +
        "could record how it ended (agentos marks it abandoned when it next starts a kernel)" : null,
    }, r.shown_status);
  }

  function card(key, label, value, format, extra) {
    return el("div", { class: "card", "data-metric": key, "data-value": value ?? "" },
      el("div", { class: "label" }, label),
      el("div", { class: "value" }, fmt(value, format), extra ? el("span", { class: "dim" }, extra) : ""));
  }

  // While the shown run is running, its wall time ticks on between change events.
  setInterval(() => {
    const r = state.shown;
    if (!r || r.shown_status !== "running") return;
    const value = document.querySelector("#totals [data-metric=duration_s] .value");
    if (value) value.textContent = fmt(Date.now() / 1000 - state.offset - r.started_at, { kind: "fixed", digits: 1 });
  }, 1000);

  function renderRun(d) {
    const r = d.run;
    state.shown = r;
    state.offset = Date.now() / 1000 - d.now;  // browser clock minus server clock
    $("run-section").hidden = false;
    $("run-title").textContent = `${r.id} · ${r.name}`;
    $("run-status").replaceWith(statusBadge(r, "run-status"));
    $("run-task").textContent = r.task ?? "";
    $("run-error").hidden = !r.error;
    $("run-error").textContent = r.error ?? "";
    const t = r.totals;
    const seconds = r.duration_s ?? (r.shown_status === "running" ? d.now - r.started_at : null);
    const tokenSplit = "prompt_tokens" in t ? ` (${fmt(t.prompt_tokens, INT)} in / ${fmt(t.completion_tokens, INT)} out)` : "";
    $("totals").replaceChildren(
      card("syscalls", "syscalls", t.syscalls, INT),
      card("tokens", "tokens", t.tokens, INT, tokenSplit),
      ...shown(d.metrics).map((m) => card(m.key, m.label, t[m.key], m.format)),
      card("queue_wait_s", "queue wait s (sum)", t.queue_wait_s, SEC),
      card("service_s", "service s (sum)", t.service_s, SEC),
      card("duration_s", r.shown_status === "running" ? "running for s" : "wall time s", seconds, { kind: "fixed", digits: 1 }));
    renderMethods(d);
    renderAgents(d);
    renderResources(d);
    renderTimeline(d);
    renderSyscalls(d);
  }

  // How each number was obtained (energy_method, flops_method...): never left unsaid.
  function renderMethods(d) {
    const items = Object.entries(d.methods ?? {}).map(([column, uses]) => el("li",
      { "data-method": column },
      `${column.replace(/_method$/, "").replace(/_/g, " ")}: `,
      uses.map((u) => `${u.method ?? "not recorded"} (${u.syscalls} syscall${u.syscalls === 1 ? "" : "s"})`).join("; ")));
    $("methods").replaceChildren(...items);
  }

  function renderAgents(d) {
    const metrics = shown(d.metrics);
    const table = $("agents");
    head(table, [["agent"], ["syscalls", 1], ["by kind"], ["tokens", 1],
      ...metrics.map((m) => [m.label, 1]), ["wait s", 1], ["service s", 1]]);
    table.tBodies[0].replaceChildren(...d.agents.map((a) => el("tr", { "data-agent": a.agent },
      el("td", { "data-col": "agent" }, a.agent),
      numCell("syscalls", a.syscalls, INT),
      el("td", { "data-col": "by_kind" }, Object.entries(a.by_kind).map(([k, n]) => `${k} ${n}`).join(" · ")),
      numCell("tokens", a.tokens, INT),
      ...metrics.map((m) => numCell(m.key, a[m.key], m.format)),
      numCell("queue_wait_s", a.queue_wait_s, SEC),
      numCell("service_s", a.service_s, SEC))));
  }

  function renderResources(d) {
    const table = $("resources");
    head(table, [["resource"], ["syscalls", 1], ["wait s (sum)", 1], ["mean wait ms", 1],
      ["max wait ms", 1], ["service s", 1]]);
    table.tBodies[0].replaceChildren(...d.resources.map((g) => el("tr", { "data-resource": g.resource },
      el("td", { "data-col": "resource" }, g.resource),
      numCell("syscalls", g.syscalls, INT),
      numCell("queue_wait_s", g.queue_wait_s, SEC),
      numCell("mean_wait_ms", (g.queue_wait_s / g.syscalls) * 1e3, MS),
      numCell("max_wait_ms", g.max_wait_s * 1e3, MS),
      numCell("service_s", g.service_s, SEC))));
  }

  const KINDS = ["llm", "tool", "memory", "publish"];
  const kindClass = (kind) => (KINDS.includes(kind) ? kind : "other");

  function niceStep(span) {
    const raw = span / 8;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (raw <= m * power) return m * power;
    return 10 * power;
  }

  function renderTimeline(d) {
    const legend = $("legend");
    if (!legend.childElementCount) {
      legend.append(el("span", {}, el("i", { style: "background: var(--wait)" }), "queue wait"));
      for (const k of [...KINDS, "other"]) {
        legend.append(el("span", {}, el("i", { style: `background: var(--${k})` }), `${k} service`));
      }
      legend.append(el("span", {}, el("i", { style: "border: 2px solid var(--bad)" }), "not ok"));
    }
    const tl = d.timeline;
    const box = $("timeline");
    const running = d.run.shown_status === "running";
    const span = Math.max(tl.end_s, running ? d.now - d.run.started_at : 0, 1e-3);
    const labelW = 150, rowH = 16, gap = 6, top = 20;
    const width = Math.max(box.clientWidth || 900, 600);
    const plotW = width - labelW - 10;
    const x = (s) => labelW + (s / span) * plotW;
    const lanes = tl.agents.reduce((n, a) => n + Math.max(a.lanes, 1), 0);
    const height = top + lanes * rowH + tl.agents.length * gap + 4;
    const root = svg("svg", { width, height, role: "img", "aria-label": "timeline of syscalls per agent" });
    const step = niceStep(span);
    const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
    for (let s = 0; s <= span + 1e-9; s += step) {
      root.append(svg("line", { class: "grid", x1: x(s), x2: x(s), y1: top - 4, y2: height }));
      const label = svg("text", { class: "axis", x: x(s) + 2, y: 12 });
      label.textContent = `${s.toFixed(digits)} s`;
      root.append(label);
    }
    let y = top;
    for (const a of tl.agents) {
      const group = svg("g", { class: "lane", "data-agent": a.agent });
      const name = svg("text", { x: 4, y: y + rowH - 4 });
      name.textContent = a.agent;
      group.append(name);
      for (const b of a.bars) {
        const by = y + b.lane * rowH + 2, bh = rowH - 4;
        const bar = svg("g", { class: "bar", "data-syscall-id": b.id });
        const title = svg("title");
        title.textContent = `${a.agent}: ${b.kind} ${b.name ?? ""} on ${b.resource} · ` +
          `waited ${fmt(b.wait_s * 1e3, MS)} ms, served ${fmt(b.service_s * 1e3, MS)} ms · ${b.outcome}`;
        bar.append(title);
        const x0 = x(b.start_s), xw = x(b.start_s + b.wait_s);
        const xs = x(b.start_s + b.wait_s + b.service_s);
        bar.append(svg("rect", { class: "wait", x: x0, y: by, width: Math.max(xw - x0, 0), height: bh }));
        const bad = b.outcome === "ok" ? "" : " bad";
        bar.append(svg("rect", { class: `service ${kindClass(b.kind)}${bad}`, x: xw, y: by,
          width: Math.max(xs - xw, 1), height: bh }));
        group.append(bar);
      }
      root.append(group);
      y += Math.max(a.lanes, 1) * rowH + gap;
    }
    box.replaceChildren(root);
  }

  function renderSyscalls(d) {
    const metrics = shown(d.metrics);
    const table = $("syscalls");
    head(table, [["#", 1], ["agent"], ["kind"], ["name"], ["outcome"], ["wait ms", 1],
      ["service ms", 1], ["tries", 1], ["tokens in/out", 1], ...metrics.map((m) => [m.label, 1]),
      ["error"]]);
    const known = new Set(["id", "run_id", "agent", "kind", "resource", "name", "submitted_at",
      "queue_wait_s", "service_s", "attempts", "outcome", "error", "detail", "tokens",
      ...d.metrics.map((m) => m.key)]);
    table.tBodies[0].replaceChildren(...d.syscalls.map((s, i) => {
      const extra = Object.entries(s).filter(([k, v]) => !known.has(k) && v !== null)
        .map(([k, v]) => `${k}: ${v}`);
      const title = [s.resource, s.error ?? "", JSON.stringify(s.detail), ...extra]
        .filter(Boolean).join("\n");
      return el("tr", { "data-syscall-id": s.id, class: s.outcome === "ok" ? null : "bad", title },
        numCell("index", i, INT),
        el("td", { "data-col": "agent" }, s.agent),
        el("td", { "data-col": "kind" }, s.kind),
        el("td", { "data-col": "name" }, s.name ?? ""),
        el("td", { class: "outcome", "data-col": "outcome" }, s.outcome),
        numCell("wait_ms", s.queue_wait_s * 1e3, MS),
        numCell("service_ms", s.service_s * 1e3, MS),
        numCell("attempts", s.attempts, INT),
        el("td", { class: "num", "data-col": "tokens" }, `${s.prompt_tokens ?? 0}/${s.completion_tokens ?? 0}`),
        ...metrics.map((m) => numCell(m.key, s[m.key], m.format)),
        el("td", { "data-col": "error", class: "task-cell" }, clip(s.error ?? "", 80)));
    }));
  }

  function message(text) {
    $("message").hidden = !text;
    $("message").textContent = text ?? "";
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
    return body;
  }

  async function refresh() {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    try {
      do {
        state.again = false;
        const runs = await getJSON("/api/runs");
        if (!state.pinned) state.selected = runs.runs.length ? runs.runs[0].id : null;
        renderRuns(runs);
        if (state.selected) {
          try {
            renderRun(await getJSON(`/api/runs/${encodeURIComponent(state.selected)}`));
            message(null);
          } catch (error) {
            $("run-section").hidden = true;
            state.shown = null;
            message(error.message);
          }
        }
        document.body.dataset.refreshed = String(Date.now());
        // Changes during a refresh are read once more, at most ~3 times a second (big runs).
        if (state.again) await new Promise((resolve) => setTimeout(resolve, 300));
      } while (state.again);
    } catch (error) {
      message(`could not read the dashboard's data: ${error.message}`);
    } finally {
      state.busy = false;
    }
  }

  function connect() {
    const live = $("live");
    const events = new EventSource("/api/events");
    const online = () => { live.textContent = "live"; live.className = "live on"; };
    events.addEventListener("hello", () => { online(); refresh(); });
    events.addEventListener("change", () => { online(); refresh(); });
    events.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  }

  window.addEventListener("popstate", () => {
    const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
    state.pinned = Boolean(m);
    state.selected = m ? decodeURIComponent(m[1]) : null;
    refresh();
  });
  connect();
})();
