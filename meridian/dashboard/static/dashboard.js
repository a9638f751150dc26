/* Meridian runs page: a sortable, filterable table of runs with details and comparisons.
 *
 * One page, two sources (meridian/dashboard/page.py):
 *  - static (outputs/index.html): rows come from chunk files dashboard/rows-NNNNN.js, loaded
 *    at start; details and curves from dashboard/runs-NNNNN.js when a run is opened. Sorting
 *    and filtering happen here (keys computed once per column, an index array sorted).
 *  - live (`meridian ui`): the server pages, sorts and filters in SQLite; the page polls for
 *    changes and offers delete, tags/note and re-run.
 * Every displayed value arrives formatted. Every node is built with createElement/textContent:
 * no user string is ever parsed as HTML.
 */
"use strict";
(function () {
  const PAGE = 200;
  const MAX_COMPARE = 50;
  const POLL_MS = 1500;
  const DATA = JSON.parse(document.getElementById("meridian-data").textContent);
  const LIVE = DATA.source === "live";
  const METRICS = DATA.metrics;
  const TABLE = DATA.table_metrics;
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  const metricByKey = {};
  METRICS.forEach((m) => { metricByKey[m.key] = m; });
  const short = (id) => id.slice(0, 8);
  const when = (iso) => (iso || "").slice(0, 19).replace("T", " ");
  const plotlyText = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
  const fmt = (n) => n.toLocaleString("en-US");

  /* Columnar rows (page.rows_payload) → one object per run. */
  function decodeRows(c) {
    const coded = (col, i) => (col ? col.v[col.i[i]] : null);
    const out = new Array(c.id.length);
    const params = Object.keys(c.params || {});
    for (let i = 0; i < c.id.length; i++) {
      const p = {};
      for (const name of params) {
        const v = coded(c.params[name], i);
        if (v !== null) p[name] = v;
      }
      const m = {}, f = {};
      for (const name of TABLE) {
        m[name] = c.metrics[name][i];
        f[name] = coded(c.formatted[name], i);
      }
      const tags = coded(c.tags, i);
      const report = c.report[i];
      out[i] = {
        id: c.id[i], seq: c.seq[i], t: c.time[i], s: coded(c.strategy, i), n: coded(c.name, i),
        k: coded(c.kind, i), st: coded(c.status, i), pt: coded(c.params_text, i) || "", p,
        tg: tags ? JSON.parse(tags) : [], no: coded(c.note, i) || "", e: c.error[i],
        u: coded(c.universe, i), da: coded(c.data, i) || "—", di: coded(c.data_id, i) || "",
        m, f, tc: c.trades[i], d: c.duration[i],
        r: report === 1 ? `${DATA.files}runs/${encodeURIComponent(c.id[i])}/report.html`
          : report ? DATA.files + report : null,
      };
    }
    return out;
  }

  // ------------------------------------------------------------------ columns
  const columns = [
    { id: "run", label: "Run", type: "text", key: (r) => r.id },
    { id: "time", label: "Time (UTC)", type: "text", key: (r) => r.t || "" },
    { id: "strategy", label: "Strategy", type: "text",
      key: (r) => (r.s + " " + (r.n || "")).toLowerCase() },
    { id: "params", label: "Parameters", type: "text", key: (r) => r.pt.toLowerCase() },
    { id: "data", label: "Data", type: "text", key: (r) => r.da.toLowerCase() },
    { id: "status", label: "Status", type: "text", key: (r) => r.st },
  ];
  for (const name of TABLE) {
    columns.push({ id: "m:" + name, label: metricByKey[name].label, type: "number",
                   metric: name, key: (r) => r.m[name] });
  }
  columns.push({ id: "report", label: "Report", type: "number", key: (r) => (r.r ? 1 : NaN) });

  // ------------------------------------------------------------------ static source
  /* Chunk files call window.meridianChunk(kind, number, payload) when they load. */
  const chunkWaiters = {};
  const chunkData = {};
  window.meridianChunk = function (kind, number, payload) {
    chunkData[kind + number] = payload;
  };
  function loadChunk(kind, number) {
    const key = kind + number;
    if (chunkData[key]) return Promise.resolve(chunkData[key]);
    if (!chunkWaiters[key]) {
      chunkWaiters[key] = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.onload = () => (chunkData[key] ? resolve(chunkData[key])
          : reject(new Error(`${kind} chunk ${number} is empty`)));
        script.onerror = () => reject(new Error(`could not load ${script.src}`));
        script.src = `${DATA.chunk_dir}/${kind}-${String(number).padStart(5, "0")}.js`;
        document.head.appendChild(script);
      });
    }
    return chunkWaiters[key];
  }

  function staticSource() {
    let RUNS = [];
    let haystack = [];
    const keyCache = {};
    let cached = { signature: null, visible: [] };

    function keysFor(column) {
      let keys = keyCache[column.id];
      if (!keys) {
        const N = RUNS.length;
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

    /* Indices in the column's order; ties keep registry order (newest first), missing
       values (null metrics, empty text) always last. */
    function sortedOrder(column, dir) {
      const N = RUNS.length;
      const order = new Array(N);
      for (let i = 0; i < N; i++) order[i] = i;
      if (column.id === "time" && dir < 0) return order;
      const keys = keysFor(column);
      const missing = column.type === "number" ? (x) => x !== x : (x) => x === "";
      order.sort((a, b) => {
        const x = keys[a], y = keys[b];
        const xm = missing(x), ym = missing(y);
        if (xm || ym) return xm === ym ? a - b : (xm ? 1 : -1);
        return x === y ? a - b : (x < y ? -dir : dir);
      });
      return order;
    }

    function matches(i, q) {
      const r = RUNS[i];
      if (q.strategy && r.s !== q.strategy) return false;
      if (q.status && r.st !== q.status) return false;
      if (q.tag && r.tg.indexOf(q.tag) < 0) return false;
      if (q.universe && r.u !== q.universe) return false;
      const t = q.threshold;
      if (t) {
        const v = r.m[t.metric];
        if (v === null || v === undefined) return false;
        if (t.op === "gt" ? !(v > t.value) : t.op === "ge" ? !(v >= t.value)
          : t.op === "lt" ? !(v < t.value) : !(v <= t.value)) return false;
      }
      for (const word of q.text) if (!wordMatches(r, haystack[i], word)) return false;
      return true;
    }

    /* One word of the filter, by the grammar of meridian.registry.query: name=value (the
       parameter, exactly), metric>number (also >=, <, <=), tag:name, or text anywhere. */
    function wordMatches(r, h, word) {
      const compared = /^([A-Za-z_]\w*)(>=|<=|>|<)(.+)$/.exec(word);
      const assigned = /^([A-Za-z_]\w*)=(.*)$/.exec(word);
      if (/^tag:./i.test(word)) return r.tg.indexOf(word.slice(4)) >= 0;
      if (compared && Number.isFinite(Number(compared[3]))) {
        const v = r.m[compared[1]], bound = Number(compared[3]);
        if (v === null || v === undefined) return false;
        return compared[2] === ">" ? v > bound : compared[2] === ">=" ? v >= bound
          : compared[2] === "<" ? v < bound : v <= bound;
      }
      if (assigned) {
        if (!(assigned[1] in r.p)) return false;
        const have = String(r.p[assigned[1]]), want = assigned[2].replace(/^(["'])(.*)\1$/, "$2");
        if (have === want) return true;
        if (/^(true|false)$/i.test(want)) return have.toLowerCase() === want.toLowerCase();
        return want.trim() !== "" && Number(have) === Number(want);
      }
      return h.indexOf(word.toLowerCase()) >= 0;
    }

    let orderCache = { key: null, order: null };
    return {
      async init() {
        const chunks = await Promise.all(DATA.chunks.map((n) => loadChunk("rows", n)));
        for (const chunk of chunks) RUNS = RUNS.concat(decodeRows(chunk));
        RUNS.sort((a, b) => (a.t === b.t ? b.seq - a.seq : (a.t < b.t ? 1 : -1)));
        haystack = RUNS.map((r) => [short(r.id), r.id, r.s, r.n || "", r.st, r.k, r.pt,
                                    Object.keys(r.p).map((k) => k + "=" + r.p[k]).join(" "),
                                    r.tg.join(" "), r.no, r.e || "", r.u || "", r.da, when(r.t)]
          .join(" ").toLowerCase());
      },
      async page(q, offset, limit) {
        const signature = JSON.stringify(q);
        if (cached.signature !== signature) {
          const orderKey = q.sort + " " + q.dir;
          if (orderCache.key !== orderKey) {
            orderCache = { key: orderKey,
                           order: sortedOrder(columns.find((c) => c.id === q.sort), q.dir) };
          }
          const visible = [];
          for (const i of orderCache.order) if (matches(i, q)) visible.push(i);
          cached = { signature, visible };
        }
        return { rows: cached.visible.slice(offset, offset + limit).map((i) => RUNS[i]),
                 matching: cached.visible.length, total: RUNS.length };
      },
      async facets() {
        const f = { total: RUNS.length, strategies: {}, statuses: {}, tags: {}, universes: {} };
        for (const r of RUNS) {
          if (r.u) f.universes[r.u] = (f.universes[r.u] || 0) + 1;
          f.strategies[r.s] = (f.strategies[r.s] || 0) + 1;
          f.statuses[r.st] = (f.statuses[r.st] || 0) + 1;
          for (const tag of r.tg) f.tags[tag] = (f.tags[tag] || 0) + 1;
        }
        return f;
      },
      async details(row) {
        const chunk = await loadChunk("runs", Math.floor(row.seq / DATA.chunk_size));
        const d = chunk.runs[row.id];
        if (!d) throw new Error(`run ${row.id} is not in its chunk`);
        return Object.assign({ x: d.axis === undefined ? null : chunk.axes[d.axis] }, d);
      },
    };
  }

  // ------------------------------------------------------------------ live source
  function api(path, body) {
    const options = { headers: { "X-Meridian-Token": DATA.token }, credentials: "same-origin" };
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(async (response) => {
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) {
        const error = new Error(payload.error || `${response.status} ${response.statusText}`);
        error.payload = payload;
        error.status = response.status;
        throw error;
      }
      return payload;
    });
  }

  function liveSource() {
    const query = (q) => {
      const p = new URLSearchParams({ sort: q.sort, dir: String(q.dir), q: q.text.join(" "),
                                      strategy: q.strategy, status: q.status, tag: q.tag,
                                      universe: q.universe });
      if (q.threshold) {
        p.set("metric", q.threshold.metric);
        p.set("op", q.threshold.op);
        p.set("value", String(q.threshold.value));
      }
      return p;
    };
    return {
      async init() {},
      async page(q, offset, limit) {
        const p = query(q);
        p.set("offset", String(offset));
        p.set("limit", String(limit));
        const answer = await api("api/runs?" + p.toString());
        return { rows: decodeRows(answer.rows), matching: answer.matching, total: answer.total };
      },
      facets: () => api("api/facets"),
      async details(row) {
        const d = await api("api/runs/" + encodeURIComponent(row.id));
        const one = d.runs[row.id];
        return Object.assign({ x: one.axis === undefined ? null : d.axes[one.axis], rerun: d.rerun },
                             one);
      },
    };
  }

  const source = LIVE ? liveSource() : staticSource();

  // ------------------------------------------------------------------ state and filters
  const state = {
    sort: "time", dir: -1, text: [], strategy: "", status: "", tag: "", universe: "",
    threshold: null,
    rows: [], matching: 0, total: 0, selected: new Map(), open: null, generation: 0,
  };

  function readFilters() {
    state.text = $("filter-text").value.split(/\s+/).filter(Boolean);
    state.strategy = $("filter-strategy").value;
    state.status = $("filter-status").value;
    state.tag = $("filter-tag").value;
    state.universe = $("filter-universe").value;
    const key = $("threshold-metric").value;
    const raw = $("threshold-value").value;
    state.threshold = null;
    $("threshold-unit").textContent = "";
    if (key !== "") {
      const kind = metricByKey[key].kind;
      $("threshold-unit").textContent = kind === "percent" ? "%" : kind === "currency" ? "$"
        : kind === "days" ? "days" : "";
      const value = parseFloat(raw);
      if (raw !== "" && isFinite(value)) {
        state.threshold = { metric: key, op: $("threshold-op").value,
                            value: kind === "percent" ? value / 100 : value };
      }
    }
  }
  const currentQuery = () => ({ sort: state.sort, dir: state.dir, text: state.text,
                                strategy: state.strategy, status: state.status, tag: state.tag,
                                universe: state.universe,
                                threshold: state.threshold });

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
      if (state.sort === column.id) {
        th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      }
      row.appendChild(th);
    }
    if (LIVE) row.appendChild(el("th", "actions-col"));
  }

  function cell(tr, className, text) {
    const td = el("td", className, text);
    tr.appendChild(td);
    return td;
  }

  function buildRows(fragment, rows) {
    for (const r of rows) {
      const tr = el("tr", "run " + r.st + (state.selected.has(r.id) ? " selected" : ""));
      tr.dataset.run = r.id;
      tr.dataset.runId = r.id;
      const box = el("input");
      box.type = "checkbox";
      box.checked = state.selected.has(r.id);
      box.setAttribute("aria-label", "select run " + short(r.id));
      cell(tr, "sel").appendChild(box);
      const id = el("button", "run-id", short(r.id));
      id.type = "button";
      id.title = "details of run " + r.id;
      cell(tr, "id").appendChild(id);
      cell(tr, "time", when(r.t));
      const strategy = cell(tr, "strategy", r.s);
      if (r.n) strategy.appendChild(el("div", "muted small", r.n));
      if (r.u) strategy.appendChild(el("div", "muted small", "universe " + r.u));
      if (r.tg.length) {
        const tags = el("div", "tags");
        for (const tag of r.tg) tags.appendChild(el("span", "tag", tag));
        strategy.appendChild(tags);
      }
      const params = cell(tr, "params", r.pt || "defaults");
      params.title = Object.keys(r.p).map((k) => k + "=" + r.p[k]).join(", ");
      if (!r.pt) params.classList.add("muted");
      cell(tr, "data", r.da).title = "the data this run used: file and span";
      cell(tr, "status").appendChild(el("span", "badge " + r.st, r.st));
      for (const name of TABLE) {
        const value = r.m[name];
        cell(tr, "num c-" + name + (value !== null && value < 0 ? " neg" : ""), r.f[name]);
      }
      const report = cell(tr, "report");
      if (r.r) {
        const a = el("a", "", "view report");
        a.href = r.r;
        a.title = "the run's HTML report";
        report.appendChild(a);
      } else {
        report.textContent = "—";
        report.className = "report muted";
      }
      if (LIVE) {
        const remove = el("button", "delete", "Delete");
        remove.type = "button";
        remove.dataset.action = "delete";
        remove.title = "delete run " + r.id + " (a backup is kept)";
        cell(tr, "row-actions").appendChild(remove);
      }
      fragment.appendChild(tr);
      if (r.e) {
        const err = el("tr", "error-row");
        err.dataset.run = r.id;
        const td = el("td", "", "Error: " + r.e);
        td.colSpan = columns.length + (LIVE ? 2 : 1);
        err.appendChild(td);
        fragment.appendChild(err);
      }
    }
  }

  /* Re-read the rows for the current filters and order; `keep` re-fetches as many rows as
     are on screen (a live refresh) instead of the first page. */
  async function render(keep) {
    readFilters();
    const generation = ++state.generation;
    const limit = keep ? Math.max(PAGE, state.rows.length) : PAGE;
    let answer;
    try {
      answer = await source.page(currentQuery(), 0, limit);
    } catch (error) {
      showProblem(error);
      return;
    }
    if (generation !== state.generation) return;  // a newer render started meanwhile
    state.rows = answer.rows;
    state.matching = answer.matching;
    state.total = answer.total;
    const fragment = document.createDocumentFragment();
    buildRows(fragment, state.rows);
    tbody.replaceChildren(fragment);
    updateCounts();
  }

  let loadingMore = false;
  async function showMore() {
    if (loadingMore || state.rows.length >= state.matching) return;
    loadingMore = true;
    const generation = state.generation;
    try {
      const answer = await source.page(currentQuery(), state.rows.length, PAGE);
      if (generation !== state.generation) return;
      state.rows = state.rows.concat(answer.rows);
      const fragment = document.createDocumentFragment();
      buildRows(fragment, answer.rows);
      tbody.appendChild(fragment);
      updateCounts();
    } catch (error) {
      showProblem(error);
    } finally {
      loadingMore = false;
    }
  }

  function updateCounts() {
    const shown = state.rows.length;
    const showing = shown < state.matching ? ` (showing ${fmt(shown)})` : "";
    $("count").textContent = state.matching === state.total
      ? `${fmt(state.total)} runs${showing}`
      : `${fmt(state.matching)} of ${fmt(state.total)} runs match${showing}`;
    $("more").hidden = shown >= state.matching;
    const empty = $("empty");
    empty.hidden = state.matching > 0;
    empty.textContent = state.total === 0
      ? "No runs yet. Run a strategy (e.g. `meridian run fld`) and this page fills itself."
      : "No run matches these filters.";
    const count = state.selected.size;
    $("selection").textContent = count ? `${count} selected` : "";
    $("compare").disabled = count < 2;
    $("compare").textContent = count >= 2 ? `Compare ${count} runs` : "Compare selected";
    $("clear-selection").disabled = count === 0;
    $("delete-selected").hidden = !LIVE;
    $("delete-selected").disabled = count === 0;
  }

  function showProblem(error) {
    $("problem").hidden = false;
    $("problem").textContent = String(error.message || error);
  }

  function sortBy(columnId) {
    const column = columns.find((c) => c.id === columnId);
    if (!column) return;
    if (state.sort === columnId) state.dir = -state.dir;
    else {
      state.sort = columnId;
      state.dir = column.type === "number" || column.id === "time" ? -1 : 1;
    }
    renderHead();
    return render();
  }

  // ------------------------------------------------------------------ details
  function definitionList(pairs) {
    const dl = el("dl");
    for (const [term, value] of pairs) dl.append(el("dt", "", term), el("dd", "", value));
    return dl;
  }

  async function showDetails(r) {
    state.open = r;
    $("details-title").textContent = `Run ${short(r.id)} · ${r.s}`;
    const body = $("details-body");
    body.replaceChildren(el("p", "muted", "Loading…"));
    $("details").hidden = false;
    $("details").scrollIntoView({ block: "nearest" });
    let d;
    try {
      d = await source.details(r);
    } catch (error) {
      body.replaceChildren(el("pre", "", String(error.message || error)));
      return;
    }
    if (state.open !== r) return;
    body.replaceChildren();
    if (d.error) body.appendChild(el("pre", "", d.error));
    const info = [["run id", r.id], ["strategy", r.s], ["name", r.n || "—"], ["status", r.st],
                  ["kind", r.k], ["universe", r.u || "—"], ["time (UTC)", when(r.t)],
                  ["duration", r.d === null || r.d === undefined ? "—" : r.d.toFixed(2) + " s"],
                  ["trades", r.tc === null || r.tc === undefined ? "—" : String(r.tc)],
                  ["tags", r.tg.join(", ") || "—"], ["note", d.note || "—"]];
    const params = Object.keys(d.params).map((k) => [k, d.params[k]]);
    const metrics = d.metric_names.map((name, n) => [(metricByKey[name] || { label: name }).label, d.formatted[n]]);
    const cols = el("div", "cols");
    const block = (title, pairs) => {
      const div = el("div");
      div.append(el("h3", "small muted", title), definitionList(pairs));
      return div;
    };
    cols.append(block("Run", info), block("Parameters", params.length ? params : [["—", ""]]),
                block("Metrics", metrics.length ? metrics : [["—", ""]]));
    body.appendChild(cols);
    if (r.r) {
      const a = el("a", "", "Open the HTML report");
      a.href = r.r;
      body.appendChild(a);
    }
    if (LIVE) body.appendChild(editors(r, d));
  }

  // ------------------------------------------------------------------ live actions
  function field(label, input, name) {
    const wrap = el("label", "field");
    wrap.append(el("span", "small muted", label), input);
    const problem = el("span", "field-error");
    problem.dataset.errorFor = name;
    wrap.appendChild(problem);
    return wrap;
  }

  function editors(r, d) {
    const box = el("div", "editors");
    // tags and note
    const tagForm = el("form", "tag-form");
    tagForm.dataset.action = "tags";
    const tags = el("input");
    tags.name = "tags";
    tags.value = r.tg.join(" ");
    tags.placeholder = "keeper idea-3";
    const note = el("input");
    note.name = "note";
    note.value = d.note || "";
    const saveTags = el("button", "", "Save tags and note");
    saveTags.type = "submit";
    const tagStatus = el("span", "form-status muted small");
    tagForm.append(el("h3", "small muted", "Tags and note"),
                   field("tags (words, space separated)", tags, "tags"),
                   field("note", note, "note"), saveTags, tagStatus);
    tagForm.addEventListener("submit", (event) => {
      event.preventDefault();
      clearErrors(tagForm);
      tagStatus.textContent = "saving…";
      api(`api/runs/${encodeURIComponent(r.id)}/tags`,
          { tags: tags.value.split(/\s+/).filter(Boolean), note: note.value })
        .then(() => { tagStatus.textContent = "saved"; refresh(); })
        .catch((error) => { tagStatus.textContent = ""; showErrors(tagForm, error); });
    });
    box.appendChild(tagForm);
    // re-run
    const spec = d.rerun;
    if (!spec) return box;
    const form = el("form", "rerun-form");
    form.dataset.action = "rerun";
    form.appendChild(el("h3", "small muted", `Re-run with these parameters (${spec.kind})`));
    if (spec.refusal) {
      const note = form.appendChild(el("p", "muted", spec.refusal));
      if (spec.notebook) {
        const link = el("a", null, "open the notebook");
        link.href = spec.notebook;
        note.append(" · ", link);
      }
      box.appendChild(form);
      return box;
    }
    const grid = el("div", "rerun-fields");
    for (const p of spec.params) {
      let input;
      if (p.type === "bool") {
        input = el("select");
        for (const value of ["True", "False"]) {
          const option = el("option", "", value);
          option.value = value;
          input.appendChild(option);
        }
        input.value = p.value;
      } else {
        input = el("input");
        input.type = "text";
        input.value = p.value;
        input.inputMode = p.type === "int" || p.type === "float" ? "decimal" : "text";
      }
      input.name = p.name;
      input.title = `${p.type}, default ${p.default}` + (p.range ? `, range ${p.range}` : "");
      grid.appendChild(field(`${p.name} (${p.type})`, input, p.name));
    }
    form.appendChild(grid);
    const submit = el("button", "primary", "Re-run");
    submit.type = "submit";
    const status = el("span", "form-status muted small");
    form.append(submit, status);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearErrors(form);
      const values = {};
      for (const p of spec.params) values[p.name] = form.elements[p.name].value;
      status.textContent = "queuing…";
      submit.disabled = true;
      api(`api/runs/${encodeURIComponent(r.id)}/rerun`, { params: values })
        .then((answer) => {
          status.textContent = `queued as run ${short(answer.run_id)}: it appears in the ` +
            "table and updates when it finishes";
          refresh();
        })
        .catch((error) => { status.textContent = ""; showErrors(form, error); })
        .finally(() => { submit.disabled = false; });
    });
    box.appendChild(form);
    return box;
  }

  function clearErrors(form) {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll(".form-error")) node.remove();
  }

  function showErrors(form, error) {
    const fields = (error.payload && error.payload.errors) || {};
    let placed = false;
    for (const name of Object.keys(fields)) {
      const slot = form.querySelector(`.field-error[data-error-for="${CSS.escape(name)}"]`);
      if (slot) { slot.textContent = fields[name]; placed = true; }
    }
    if (!placed || (error.payload && error.payload.error && !Object.keys(fields).length)) {
      form.appendChild(el("p", "form-error", error.message));
    }
  }

  async function deleteRuns(ids) {
    if (!ids.length) return;
    const what = ids.length === 1 ? `run ${short(ids[0])}` : `${ids.length} runs`;
    if (!window.confirm(`Delete ${what}? The registry is backed up first and each run's ` +
                        "folder moves to backups/deleted/.")) return;
    try {
      await api("api/delete", { ids });
    } catch (error) {
      showProblem(error);
      return;
    }
    for (const id of ids) state.selected.delete(id);
    if (state.open && ids.indexOf(state.open.id) >= 0) {
      state.open = null;
      $("details").hidden = true;
    }
    refresh();
  }

  // ------------------------------------------------------------------ comparison
  /* plotly.js loads only when a chart is first needed: from the shared file, or inlined as
     inert text in a standalone page. Selecting a run starts it, so it is usually ready by
     "Compare". */
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
  function labels(runs, details) {
    const values = {};
    for (const d of details) {
      for (const k of Object.keys(d.params)) (values[k] = values[k] || new Set()).add(d.params[k]);
    }
    const differing = Object.keys(values).filter((k) => values[k].size > 1);
    const out = runs.map((r, n) => {
      const head = r.n ? `${r.n} (${r.s})` : r.s;
      const p = details[n].params;
      const params = differing.filter((k) => k in p).map((k) => `${k}=${p[k]}`).join(", ");
      return params ? `${head} ${params}` : head;
    });
    const count = {};
    for (const label of out) count[label] = (count[label] || 0) + 1;
    return { differing, labels: out.map((label, n) => (count[label] > 1
      ? `${label} · ${short(runs[n].id)}` : label)) };
  }

  async function compare() {
    const runs = Array.from(state.selected.values());
    if (runs.length < 2) return;
    const note = [];
    if (runs.length > MAX_COMPARE) {
      note.push(`Showing the first ${MAX_COMPARE} of ${runs.length} selected runs.`);
      runs.length = MAX_COMPARE;
    }
    $("comparison").hidden = false;
    $("comparison-title").textContent = `Comparison of ${runs.length} runs`;
    const chart = $("comparison-chart");
    chart.textContent = "Loading the runs…";
    let details;
    try {
      details = await Promise.all(runs.map((r) => source.details(r)));
    } catch (error) {
      chart.textContent = String(error.message || error);
      return;
    }
    const { differing, labels: names } = labels(runs, details);
    const traces = [];
    const missing = [];
    details.forEach((d, n) => {
      if (!d.x || !d.growth || !d.growth.length) { missing.push(names[n]); return; }
      traces.push({ type: "scatter", mode: "lines", x: d.x,
                    y: d.growth.map((v) => (v === null ? null : v / DATA.scale)),
                    name: plotlyText(names[n]), line: { width: 1.6 },
                    hovertemplate: "%{y:.3f}" });
    });
    if (missing.length) note.push("No equity curve (failed or empty run): " + missing.join("; "));
    $("comparison-note").textContent = note.join(" ");
    const warning = dataWarning(runs);
    $("comparison-data").textContent = warning;
    $("comparison-data").hidden = !warning;
    comparisonTable(runs, details, names, differing);
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

  /* The runs' data differ: the same words as meridian.record.data_differences (files by
     SHA-256, else spans); "" when they agree. */
  function dataWarning(runs) {
    let what;
    if (new Set(runs.map((r) => r.di)).size > 1) what = "different data";
    else if (new Set(runs.map((r) => r.da)).size > 1) what = "the same data over different spans";
    else return "";
    return `warning: these runs used ${what}, so their curves and metrics differ for that too: `
      + runs.map((r) => `${short(r.id)} ${r.da}`).join("; ");
  }

  function comparisonTable(runs, details, names, differing) {
    const table = $("comparison-table");
    table.replaceChildren();
    const head = el("tr");
    head.appendChild(el("th", "", "Metric"));
    runs.forEach((r, n) => {
      const th = el("th", "", short(r.id));
      th.title = r.id;
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
    textRow("status", runs.map((r) => r.st));
    textRow("data", runs.map((r) => r.da));
    for (const k of differing) textRow(k, details.map((d) => (k in d.params ? d.params[k] : "—")));
    const keys = [];
    for (const d of details) for (const key of d.metric_names) if (keys.indexOf(key) < 0) keys.push(key);
    for (const key of keys) {
      const m = metricByKey[key] || { label: key, rank: null };
      const values = details.map((d) => { const n = d.metric_names.indexOf(key); return n < 0 ? null : d.metric_values[n]; });
      const shown = details.map((d) => { const n = d.metric_names.indexOf(key); return n < 0 ? "—" : d.formatted[n]; });
      const present = values.filter((v) => v !== null && v !== undefined);
      if (!present.length) continue;
      // best in bold: ranked metrics only, ties as displayed, nothing when all are equal
      const best = m.rank === "lower" ? Math.min(...present) : Math.max(...present);
      const bestText = shown[values.indexOf(best)];
      const contest = m.rank && present.length > 1 && new Set(shown).size > 1;
      const tr = el("tr");
      tr.appendChild(el("td", "", m.label));
      shown.forEach((text) => {
        tr.appendChild(el("td", contest && text === bestText ? "best" : "", text));
      });
      body.appendChild(tr);
    }
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
      for (const text of [short(w.id), when(w.time), w.strategy, w.grid, w.combinations]) tr.appendChild(el("td", "", text));
      tr.appendChild(el("td")).appendChild(el("span", "badge " + w.status, w.status));
      for (const text of [w.metric, w.best, w.best_params]) tr.appendChild(el("td", "", text));
      const report = tr.appendChild(el("td"));
      if (w.report) {
        const a = el("a", "", "heatmap & best");
        a.href = DATA.files + w.report;
        report.appendChild(a);
      } else report.textContent = "—";
      body.appendChild(tr);
    }
  }

  // ------------------------------------------------------------------ facets and wiring
  function fillSelect(select, values) {
    const keep = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const [value, label] of values) {
      const option = el("option", "", label);
      option.value = value;
      select.appendChild(option);
    }
    select.value = keep;
    if (select.value !== keep) select.value = "";
  }

  async function renderFacets() {
    const f = await source.facets();
    const counted = (counts) => Object.keys(counts).sort()
      .map((k) => [k, `${k} (${fmt(counts[k])})`]);
    fillSelect($("filter-tag"), counted(f.tags));
    fillSelect($("filter-universe"), counted(f.universes || {}));
    fillSelect($("filter-strategy"), counted(f.strategies));
    fillSelect($("filter-status"), counted(f.statuses));
    const strategies = Object.keys(f.strategies);
    $("summary").textContent = f.total === 0 ? "No runs yet." : [
      `${fmt(f.total)} runs`,
      ...Object.keys(f.statuses).sort().map((s) => `${fmt(f.statuses[s])} ${s}`),
      `${strategies.length} ${strategies.length === 1 ? "strategy" : "strategies"}`,
    ].join(" · ");
  }

  /* Live: what changed elsewhere (a CLI run, a notebook, this page's own actions). */
  let stamp = null;
  async function refresh() {
    await Promise.all([renderFacets(), render(true)]);
  }
  async function poll() {
    try {
      const answer = await api("api/stamp");
      if (stamp !== null && answer.stamp !== stamp) await refresh();
      stamp = answer.stamp;
      $("problem").hidden = true;
    } catch (error) {
      showProblem(new Error("the meridian ui server does not answer: " + error.message));
    }
    setTimeout(poll, POLL_MS);
  }

  function setup() {
    $("nav").hidden = !LIVE;  // the Notebooks pages exist only in meridian ui
    renderSweeps();
    fillSelect($("threshold-metric"), TABLE.map((name) => [name, metricByKey[name].label]));
    $("generated").textContent = LIVE
      ? `live from ${DATA.output_dir}`
      : `generated ${when(DATA.generated)} UTC from ${DATA.output_dir}`;
    $("runs-head").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-column]");
      if (th) sortBy(th.dataset.column);
    });
    for (const id of ["filter-text", "threshold-value"]) {
      $(id).addEventListener("input", () => render());
    }
    for (const id of ["filter-strategy", "filter-status", "filter-tag", "filter-universe",
                      "threshold-metric", "threshold-op"]) {
      $(id).addEventListener("change", () => render());
    }
    $("reset").addEventListener("click", () => {
      for (const id of ["filter-text", "filter-strategy", "filter-status", "filter-tag",
                        "filter-universe", "threshold-metric", "threshold-value"]) $(id).value = "";
      render();
    });
    const rowOf = (node) => {
      const tr = node.closest("tr[data-run-id]");
      return tr ? state.rows.find((r) => r.id === tr.dataset.runId) : null;
    };
    tbody.addEventListener("change", (event) => {
      if (event.target.type !== "checkbox") return;
      const r = rowOf(event.target);
      if (!r) return;
      if (event.target.checked) state.selected.set(r.id, r); else state.selected.delete(r.id);
      event.target.closest("tr").classList.toggle("selected", event.target.checked);
      updateCounts();
      if (state.selected.size) preloadPlotly();
    });
    tbody.addEventListener("click", (event) => {
      const action = event.target.closest("[data-action]");
      if (action && action.dataset.action === "delete") {
        const r = rowOf(action);
        if (r) deleteRuns([r.id]);
        return;
      }
      if (event.target.closest("a, input, [data-action]")) return;  // links, boxes
      const r = rowOf(event.target);
      if (r) showDetails(r);
    });
    $("more").addEventListener("click", showMore);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) showMore();
      }, { rootMargin: "400px" }).observe($("more"));
    }
    $("compare").addEventListener("click", compare);
    $("delete-selected").addEventListener("click",
      () => deleteRuns(Array.from(state.selected.keys())));
    $("clear-selection").addEventListener("click", () => {
      state.selected.clear();
      for (const box of tbody.querySelectorAll("input[type=checkbox]")) box.checked = false;
      for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
      updateCounts();
    });
    $("close-comparison").addEventListener("click", () => { $("comparison").hidden = true; });
    $("close-details").addEventListener("click", () => {
      $("details").hidden = true;
      state.open = null;
    });
  }

  setup();
  renderHead();
  $("count").textContent = "Loading runs…";
  source.init()
    .then(() => Promise.all([renderFacets(), render()]))
    .then(() => {
      window.meridianDashboard = { readyAt: performance.now(), runs: state.total, sortBy,
                                   render };
      document.documentElement.dataset.ready = "1";
      if (LIVE) poll();
    })
    .catch(showProblem);
})();
