/* Meridian dashboard: the registry's runs as a sortable, filterable table with comparisons.
 *
 * Data comes from <script id="meridian-data" type="application/json">, written by
 * meridian/dashboard/page.py with every displayed value already formatted. Every node is
 * built with createElement/textContent: no user string is ever parsed as HTML.
 * Speed: sort keys are computed once per column, a sort orders an index array, and the table
 * renders PAGE rows at a time (more on scroll), so 10,000 runs stay fast.
 */
"use strict";
(function () {
  const PAGE = 200;
  const MAX_COMPARE = 50;
  const DATA = JSON.parse(document.getElementById("meridian-data").textContent);
  const RUNS = DATA.runs;
  const METRICS = DATA.metrics;
  const N = RUNS.length;
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  const metricIndex = {};
  METRICS.forEach((m, i) => { metricIndex[m.key] = i; });
  const short = (id) => id.slice(0, 8);
  const when = (iso) => (iso || "").slice(0, 19).replace("T", " ");
  const plotlyText = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");

  // ------------------------------------------------------------------ columns and sort keys
  const columns = [
    { id: "run", label: "Run", type: "text", key: (r) => r.id },
    { id: "time", label: "Time (UTC)", type: "text", key: (r) => r.t || "" },
    { id: "strategy", label: "Strategy", type: "text",
      key: (r) => (r.s + " " + (r.n || "")).toLowerCase() },
    { id: "params", label: "Parameters", type: "text", key: (r) => r.pt.toLowerCase() },
    { id: "status", label: "Status", type: "text", key: (r) => r.st },
  ];
  for (const name of DATA.table_metrics) {
    const mi = metricIndex[name];
    columns.push({ id: "m:" + name, label: METRICS[mi].label, type: "number", metric: mi,
                   key: (r) => r.m[mi] });
  }
  columns.push({ id: "report", label: "Report", type: "number", key: (r) => (r.r ? 1 : NaN) });
  const keyCache = {};

  function keysFor(column) {
    let keys = keyCache[column.id];
    if (!keys) {
      if (column.type === "number") {
        keys = new Float64Array(N);
        for (let i = 0; i < N; i++) {
          const v = column.key(RUNS[i]);
          keys[i] = v === null || v === undefined ? NaN : v;
        }
      } else {
        keys = new Array(N);
        for (let i = 0; i < N; i++) keys[i] = column.key(RUNS[i]);
      }
      keyCache[column.id] = keys;
    }
    return keys;
  }

  /* Indices of all runs in the column's order; ties keep registry order (newest first),
     missing values (null metrics, empty text) always last. */
  function sortedOrder(column, dir) {
    const order = new Array(N);
    for (let i = 0; i < N; i++) order[i] = i;
    if (column.id === "time" && dir < 0) return order;  // the registry's own order
    const keys = keysFor(column);
    if (column.type === "number") {
      order.sort((a, b) => {
        const x = keys[a], y = keys[b];
        const xm = x !== x, ym = y !== y;
        if (xm || ym) return xm === ym ? a - b : (xm ? 1 : -1);
        return x === y ? a - b : (x < y ? -dir : dir);
      });
    } else {
      order.sort((a, b) => {
        const x = keys[a], y = keys[b];
        const xm = x === "", ym = y === "";
        if (xm || ym) return xm === ym ? a - b : (xm ? 1 : -1);
        return x === y ? a - b : (x < y ? -dir : dir);
      });
    }
    return order;
  }

  // ------------------------------------------------------------------ state
  const haystack = RUNS.map((r) => [short(r.id), r.id, r.s, r.n || "", r.st, r.k, r.pt,
                                    Object.keys(r.p).map((k) => k + "=" + r.p[k]).join(" "),
                                    (r.tg || []).join(" "), r.no || "",
                                    r.e || "", when(r.t)].join(" ").toLowerCase());
  const state = {
    sort: columns[1], dir: -1, order: null,
    text: [], strategy: "", status: "", tag: "", threshold: null,
    visible: [], shown: 0, selected: new Set(),
  };

  // ------------------------------------------------------------------ filters
  function matches(i) {
    const r = RUNS[i];
    if (state.strategy && r.s !== state.strategy) return false;
    if (state.status && r.st !== state.status) return false;
    if (state.tag && (r.tg || []).indexOf(state.tag) < 0) return false;
    const t = state.threshold;
    if (t) {
      const v = r.m[t.metric];
      if (v === null || v === undefined) return false;
      if (t.op === "gt" ? !(v > t.value) : t.op === "ge" ? !(v >= t.value)
        : t.op === "lt" ? !(v < t.value) : !(v <= t.value)) return false;
    }
    if (state.text.length) {
      const h = haystack[i];
      for (const token of state.text) if (h.indexOf(token) < 0) return false;
    }
    return true;
  }

  function readFilters() {
    state.text = $("filter-text").value.toLowerCase().split(/\s+/).filter(Boolean);
    state.strategy = $("filter-strategy").value;
    state.status = $("filter-status").value;
    state.tag = $("filter-tag").value;
    const key = $("threshold-metric").value;
    const raw = $("threshold-value").value;
    state.threshold = null;
    $("threshold-unit").textContent = "";
    if (key !== "") {
      const mi = metricIndex[key];
      const kind = METRICS[mi].kind;
      $("threshold-unit").textContent = kind === "percent" ? "%" : kind === "currency" ? "$"
        : kind === "days" ? "days" : "";
      const value = parseFloat(raw);
      if (raw !== "" && isFinite(value)) {
        state.threshold = { metric: mi, op: $("threshold-op").value,
                            value: kind === "percent" ? value / 100 : value };
      }
    }
  }

  // ------------------------------------------------------------------ table
  const tbody = $("runs-body");

  function renderHead() {
    const row = $("runs-head");
    row.replaceChildren();
    row.appendChild(el("th", "sel"));
    for (const column of columns) {
      const th = el("th", column.type === "number" && column.id !== "report" ? "num" : "");
      th.dataset.column = column.id;
      const button = el("button");
      button.type = "button";
      button.append(column.label, el("span", "arrow"));
      button.title = "sort by " + column.label;
      th.appendChild(button);
      if (state.sort === column) {
        th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      }
      row.appendChild(th);
    }
  }

  function cell(tr, className, text) {
    const td = el("td", className, text);
    tr.appendChild(td);
    return td;
  }

  function buildRows(fragment, from, to) {
    for (let n = from; n < to; n++) {
      const i = state.visible[n];
      const r = RUNS[i];
      const tr = el("tr", "run " + r.st + (state.selected.has(i) ? " selected" : ""));
      tr.dataset.index = i;
      tr.dataset.run = r.id;
      tr.dataset.runId = r.id;
      const box = el("input");
      box.type = "checkbox";
      box.checked = state.selected.has(i);
      box.setAttribute("aria-label", "select run " + short(r.id));
      cell(tr, "sel").appendChild(box);
      const id = el("button", "run-id", short(r.id));
      id.type = "button";
      id.title = "details of run " + r.id;
      cell(tr, "id").appendChild(id);
      cell(tr, "time", when(r.t));
      const strategy = cell(tr, "strategy", r.s);
      if (r.n) strategy.appendChild(el("div", "muted small", r.n));
      if (r.tg && r.tg.length) {
        const tags = el("div", "tags");
        for (const tag of r.tg) tags.appendChild(el("span", "tag", tag));
        strategy.appendChild(tags);
      }
      const params = cell(tr, "params", r.pt || "defaults");
      params.title = Object.keys(r.p).map((k) => k + "=" + r.p[k]).join(", ");
      if (!r.pt) params.classList.add("muted");
      cell(tr, "status").appendChild(el("span", "badge " + r.st, r.st));
      for (const column of columns) {
        if (column.metric === undefined) continue;
        const value = r.m[column.metric];
        cell(tr, "num c-" + METRICS[column.metric].key + (value !== null && value < 0 ? " neg" : ""),
             r.f[column.metric]);
      }
      const report = cell(tr, "report");
      if (r.r) {
        const a = el("a", "", "view report");
        a.href = r.r;
        a.title = "click to view details: the run's HTML report";
        report.appendChild(a);
      } else {
        report.textContent = "—";
        report.className = "report muted";
      }
      fragment.appendChild(tr);
      if (r.e) {
        const err = el("tr", "error-row");
        err.dataset.index = i;
        const td = el("td", "", "Error: " + r.e);
        td.colSpan = columns.length + 1;
        err.appendChild(td);
        fragment.appendChild(err);
      }
    }
  }

  function render() {
    readFilters();
    if (!state.order) state.order = sortedOrder(state.sort, state.dir);
    const visible = [];
    const order = state.order;
    for (let n = 0; n < N; n++) if (matches(order[n])) visible.push(order[n]);
    state.visible = visible;
    state.shown = Math.min(PAGE, visible.length);
    const fragment = document.createDocumentFragment();
    buildRows(fragment, 0, state.shown);
    tbody.replaceChildren(fragment);
    updateCounts();
  }

  function showMore() {
    const to = Math.min(state.shown + PAGE, state.visible.length);
    if (to <= state.shown) return;
    const fragment = document.createDocumentFragment();
    buildRows(fragment, state.shown, to);
    tbody.appendChild(fragment);
    state.shown = to;
    updateCounts();
  }

  function updateCounts() {
    const total = N.toLocaleString("en-US");
    const matching = state.visible.length.toLocaleString("en-US");
    $("count").textContent = state.visible.length === N
      ? `${total} runs` + (state.shown < N ? ` (showing ${state.shown.toLocaleString("en-US")})` : "")
      : `${matching} of ${total} runs match` +
        (state.shown < state.visible.length
          ? ` (showing ${state.shown.toLocaleString("en-US")})` : "");
    $("more").hidden = state.shown >= state.visible.length;
    const empty = $("empty");
    empty.hidden = state.visible.length > 0;
    empty.textContent = N === 0
      ? "No runs yet. Run a strategy (e.g. `meridian run fld`) and this page fills itself."
      : "No run matches these filters.";
    const count = state.selected.size;
    $("selection").textContent = count ? `${count} selected` : "";
    $("compare").disabled = count < 2;
    $("compare").textContent = count >= 2 ? `Compare ${count} runs` : "Compare selected";
    $("clear-selection").disabled = count === 0;
  }

  function sortBy(columnId) {
    const column = columns.find((c) => c.id === columnId);
    if (!column) return;
    if (state.sort === column) state.dir = -state.dir;
    else { state.sort = column; state.dir = column.type === "number" || column.id === "time" ? -1 : 1; }
    state.order = null;
    renderHead();
    render();
  }

  // ------------------------------------------------------------------ details
  function definitionList(pairs) {
    const dl = el("dl");
    for (const [term, value] of pairs) {
      dl.append(el("dt", "", term), el("dd", "", value));
    }
    return dl;
  }

  function showDetails(i) {
    const r = RUNS[i];
    $("details-title").textContent = `Run ${short(r.id)} · ${r.s}`;
    const body = $("details-body");
    body.replaceChildren();
    if (r.e) body.appendChild(el("pre", "", r.e));
    const info = [["run id", r.id], ["strategy", r.s], ["name", r.n || "—"], ["status", r.st],
                  ["kind", r.k], ["time (UTC)", when(r.t)],
                  ["duration", r.d === null || r.d === undefined ? "—" : r.d.toFixed(2) + " s"],
                  ["trades", r.tc === null || r.tc === undefined ? "—" : String(r.tc)],
                  ["tags", (r.tg || []).join(", ") || "—"], ["note", r.no || "—"]];
    const params = Object.keys(r.p).map((k) => [k, r.p[k]]);
    const metrics = METRICS.map((m, mi) => [m.label, r.f[mi]]);
    const cols = el("div", "cols");
    const block = (title, pairs) => {
      const div = el("div");
      div.append(el("h3", "small muted", title), definitionList(pairs));
      return div;
    };
    cols.append(block("Run", info), block("Parameters", params.length ? params : [["—", ""]]),
                block("Metrics", metrics));
    body.appendChild(cols);
    if (r.r) {
      const a = el("a", "", "Open the HTML report");
      a.href = r.r;
      body.appendChild(a);
    }
    $("details").hidden = false;
    $("details").scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------------ comparison
  /* plotly.js ships inside the page as inert text (<script type="text/plain" id="plotly-js">)
     and runs only when a chart is first needed: most visits never chart, and parsing it
     costs about a second. Selecting a run starts it, so it is usually ready by "Compare". */
  let plotlyWaiters = null;
  function withPlotly(callback) {
    if (window.Plotly) { callback(true); return; }
    const inline = $("plotly-js");
    if (inline) {
      const script = document.createElement("script");
      script.textContent = inline.textContent;
      document.head.appendChild(script);
      callback(Boolean(window.Plotly));
      return;
    }
    if (!DATA.plotly_src) { callback(false); return; }
    if (plotlyWaiters) { plotlyWaiters.push(callback); return; }
    plotlyWaiters = [callback];
    const script = document.createElement("script");
    const done = () => {
      const waiting = plotlyWaiters;
      plotlyWaiters = null;
      waiting.forEach((wait) => wait(Boolean(window.Plotly)));
    };
    script.onload = done;
    script.onerror = done;
    script.src = DATA.plotly_src;
    document.head.appendChild(script);
  }
  let plotlyTimer = 0;
  function preloadPlotly() {
    if (!window.Plotly && !plotlyTimer) plotlyTimer = setTimeout(() => withPlotly(() => {}), 300);
  }

  /* Legend labels: strategy (or name) plus the parameters whose shown value differs between
     the compared runs (same rule as meridian.viz.run_labels); id prefix on collisions. */
  function labels(indices) {
    const values = {};
    for (const i of indices) {
      const p = RUNS[i].p;
      for (const k of Object.keys(p)) (values[k] = values[k] || new Set()).add(p[k]);
    }
    const differing = Object.keys(values).filter((k) => values[k].size > 1);
    const out = indices.map((i) => {
      const r = RUNS[i];
      const head = r.n ? `${r.n} (${r.s})` : r.s;
      const params = differing.filter((k) => k in r.p).map((k) => `${k}=${r.p[k]}`).join(", ");
      return params ? `${head} ${params}` : head;
    });
    const count = {};
    for (const label of out) count[label] = (count[label] || 0) + 1;
    return { differing, labels: out.map((label, n) => (count[label] > 1
      ? `${label} · ${short(RUNS[indices[n]].id)}` : label)) };
  }

  function compare() {
    const indices = Array.from(state.selected);
    if (indices.length < 2) return;
    const note = [];
    if (indices.length > MAX_COMPARE) {
      note.push(`Showing the first ${MAX_COMPARE} of ${indices.length} selected runs.`);
      indices.length = MAX_COMPARE;
    }
    const { differing, labels: names } = labels(indices);
    const traces = [];
    const missing = [];
    indices.forEach((i, n) => {
      const r = RUNS[i];
      if (r.a < 0 || !r.q.length) { missing.push(names[n]); return; }
      traces.push({ type: "scatter", mode: "lines", x: DATA.axes[r.a],
                    y: r.q.map((v) => (v === null ? null : v / DATA.scale)),
                    name: plotlyText(names[n]), line: { width: 1.6 },
                    hovertemplate: "%{y:.3f}" });
    });
    if (missing.length) note.push("No equity curve (failed or empty run): " + missing.join("; "));
    $("comparison-title").textContent = `Comparison of ${indices.length} runs`;
    $("comparison-note").textContent = note.join(" ");
    $("comparison").hidden = false;
    comparisonTable(indices, names, differing);
    const chart = $("comparison-chart");
    const draw = () => withPlotly((loaded) => {
      if (loaded) {
        chart.replaceChildren();
        const layout = JSON.parse(JSON.stringify(DATA.layout));
        window.Plotly.react(chart, traces, layout, { responsive: true, displaylogo: false });
      } else {
        chart.textContent = "plotly.js did not load; the chart is unavailable.";
      }
    });
    if (window.Plotly) draw();
    else { chart.textContent = "Loading the chart…"; setTimeout(draw, 0); }
    $("comparison").scrollIntoView({ block: "start" });
  }

  function comparisonTable(indices, names, differing) {
    const table = $("comparison-table");
    table.replaceChildren();
    const head = el("tr");
    head.appendChild(el("th", "", "Metric"));
    indices.forEach((i, n) => {
      const th = el("th", "", short(RUNS[i].id));
      th.title = RUNS[i].id;
      th.appendChild(el("span", "label", names[n]));
      head.appendChild(th);
    });
    const thead = el("thead");
    thead.appendChild(head);
    const body = el("tbody");
    const textRow = (label, values) => {
      const tr = el("tr");
      tr.appendChild(el("td", "", label));
      for (const v of values) tr.appendChild(el("td", "", v));
      body.appendChild(tr);
    };
    textRow("status", indices.map((i) => RUNS[i].st));
    for (const k of differing) textRow(k, indices.map((i) => (k in RUNS[i].p ? RUNS[i].p[k] : "—")));
    METRICS.forEach((m, mi) => {
      const values = indices.map((i) => RUNS[i].m[mi]);
      const present = values.filter((v) => v !== null && v !== undefined);
      if (!present.length) return;
      // best in bold: ranked metrics only, ties as displayed, nothing when all are equal
      const best = m.rank === "lower" ? Math.min(...present) : Math.max(...present);
      const bestText = RUNS[indices[values.indexOf(best)]].f[mi];
      const shown = new Set(indices.map((i) => RUNS[i].f[mi]));
      const contest = m.rank && present.length > 1 && shown.size > 1;
      const tr = el("tr");
      tr.appendChild(el("td", "", m.label));
      indices.forEach((i) => {
        const isBest = contest && RUNS[i].f[mi] === bestText;
        tr.appendChild(el("td", isBest ? "best" : "", RUNS[i].f[mi]));
      });
      body.appendChild(tr);
    });
    table.append(thead, body);
  }

  // ------------------------------------------------------------------ sweeps
  function renderSweeps() {
    const sweeps = DATA.sweeps || [];
    $("sweeps").hidden = sweeps.length === 0;
    $("sweeps-count").textContent = `(${sweeps.length})`;
    const table = $("sweeps-table");
    table.replaceChildren();
    const head = el("tr");
    for (const label of ["Sweep", "Time (UTC)", "Strategy", "Grid", "Combinations", "Status",
                         "Ranked by", "Best", "Best parameters", "Report"]) {
      head.appendChild(el("th", "", label));
    }
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const w of sweeps) {
      const tr = el("tr");
      tr.dataset.sweepId = w.id;
      for (const text of [short(w.id), when(w.t), w.s, w.g, w.c]) tr.appendChild(el("td", "", text));
      tr.appendChild(el("td")).appendChild(el("span", "badge " + w.st, w.st));
      for (const text of [w.m, w.b, w.bp]) tr.appendChild(el("td", "", text));
      const report = tr.appendChild(el("td"));
      if (w.r) {
        const a = el("a", "", "heatmap & best");
        a.href = w.r;
        report.appendChild(a);
      } else report.textContent = "—";
      body.appendChild(tr);
    }
  }

  // ------------------------------------------------------------------ wiring
  function fillSelect(select, values) {
    for (const [value, label] of values) {
      const option = el("option", "", label);
      option.value = value;
      select.appendChild(option);
    }
  }

  function setup() {
    const byStrategy = {};
    const byStatus = {};
    const byTag = {};
    for (const r of RUNS) {
      byStrategy[r.s] = (byStrategy[r.s] || 0) + 1;
      byStatus[r.st] = (byStatus[r.st] || 0) + 1;
      for (const tag of r.tg || []) byTag[tag] = (byTag[tag] || 0) + 1;
    }
    fillSelect($("filter-tag"), Object.keys(byTag).sort().map((t) => [t, `${t} (${byTag[t]})`]));
    renderSweeps();
    const strategies = Object.keys(byStrategy).sort();
    fillSelect($("filter-strategy"), strategies.map((s) => [s, `${s} (${byStrategy[s]})`]));
    fillSelect($("filter-status"), Object.keys(byStatus).sort()
      .map((s) => [s, `${s} (${byStatus[s]})`]));
    fillSelect($("threshold-metric"), METRICS.map((m) => [m.key, m.label]));
    $("summary").textContent = N === 0 ? "No runs yet." : [
      `${N.toLocaleString("en-US")} runs`,
      ...Object.keys(byStatus).sort().map((s) => `${byStatus[s].toLocaleString("en-US")} ${s}`),
      `${strategies.length} ${strategies.length === 1 ? "strategy" : "strategies"}`,
    ].join(" · ");
    $("generated").textContent = `generated ${when(DATA.generated)} UTC from ${DATA.output_dir}`;

    $("runs-head").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-column]");
      if (th) sortBy(th.dataset.column);
    });
    for (const id of ["filter-text", "threshold-value"]) $(id).addEventListener("input", render);
    for (const id of ["filter-strategy", "filter-status", "filter-tag", "threshold-metric",
                      "threshold-op"]) {
      $(id).addEventListener("change", render);
    }
    $("reset").addEventListener("click", () => {
      $("filter-text").value = "";
      $("filter-strategy").value = "";
      $("filter-status").value = "";
      $("filter-tag").value = "";
      $("threshold-metric").value = "";
      $("threshold-value").value = "";
      render();
    });
    tbody.addEventListener("change", (event) => {
      if (event.target.type !== "checkbox") return;
      const tr = event.target.closest("tr");
      const i = Number(tr.dataset.index);
      if (event.target.checked) state.selected.add(i); else state.selected.delete(i);
      tr.classList.toggle("selected", event.target.checked);
      updateCounts();
      if (state.selected.size) preloadPlotly();
    });
    tbody.addEventListener("click", (event) => {
      if (event.target.closest("a, input, [data-action]")) return;  // links, boxes, actions
      const tr = event.target.closest("tr[data-index]");
      if (tr) showDetails(Number(tr.dataset.index));
    });
    $("more").addEventListener("click", showMore);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) showMore();
      }, { rootMargin: "400px" }).observe($("more"));
    }
    $("compare").addEventListener("click", compare);
    $("clear-selection").addEventListener("click", () => {
      state.selected.clear();
      for (const box of tbody.querySelectorAll("input[type=checkbox]")) box.checked = false;
      for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
      updateCounts();
    });
    $("close-comparison").addEventListener("click", () => { $("comparison").hidden = true; });
    $("close-details").addEventListener("click", () => { $("details").hidden = true; });
  }

  setup();
  renderHead();
  render();
  window.meridianDashboard = { readyAt: performance.now(), runs: N, sortBy, render };
  document.documentElement.dataset.ready = "1";
})();
