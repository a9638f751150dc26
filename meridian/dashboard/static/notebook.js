/* Meridian notebooks page (meridian/dashboard/notebooks.py): a strategy notebook's cells,
 * Run as Backtest on every cell that defines signals(data, ...), edit and save.
 *
 * Cells arrive as jupytext reads them; Markdown comes rendered by the server. Every other
 * string is set with textContent: no user text is parsed as HTML here. A run's report
 * sections are the ones %%backtest displays in Jupyter (the header is Meridian's own markup,
 * user strings escaped; charts are Plotly JSON).
 */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("meridian-data").textContent);
  const $ = (id) => document.getElementById(id);
  const INLINE_SECTIONS = ["header", "equity", "drawdown"];
  const state = { sha: DATA.sha256, saved: {}, editors: {}, saving: false,
                  generation: 0 };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function api(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "X-Meridian-Token": DATA.token, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(async (response) => {
      const payload = await response.json().catch(() => ({}));
      if (!response.ok) {
        const error = new Error(payload.error || `${response.status} ${response.statusText}`);
        error.payload = payload;
        throw error;
      }
      return payload;
    });
  }

  function showProblem(message) {
    const box = $("problem");
    box.textContent = message || "";
    box.hidden = !message;
    if (message) box.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------------ highlighting
  const KEYWORDS = new Set(("False None True and as assert async await break class continue " +
    "def del elif else except finally for from global if import in is lambda nonlocal not or " +
    "pass raise return try while with yield match case").split(" "));
  const BUILTINS = new Set(("abs all any bool dict enumerate float int isinstance len list " +
    "max min print range round set sorted str sum tuple type zip").split(" "));
  const TOKEN = new RegExp([
    "(#[^\\n]*)",
    "([rbfuRBFU]{0,2}(?:\"\"\"[\\s\\S]*?(?:\"\"\"|$)|'''[\\s\\S]*?(?:'''|$)" +
      "|\"(?:\\\\.|[^\"\\\\\\n])*\"?|'(?:\\\\.|[^'\\\\\\n])*'?))",
    "(\\b\\d[\\d_]*(?:\\.\\d*)?(?:[eE][+-]?\\d+)?\\b)",
    "(@[\\w.]+)",
    "([A-Za-z_]\\w*)",
  ].join("|"), "g");

  function highlight(pre, code) {
    const fragment = document.createDocumentFragment();
    let last = 0;
    let afterDef = false;
    code.replace(TOKEN, (match, comment, string, number, decorator, word, offset) => {
      if (offset > last) fragment.appendChild(document.createTextNode(code.slice(last, offset)));
      let kind = comment ? "comment" : string ? "string" : number ? "number"
        : decorator ? "decorator" : null;
      if (word) {
        if (afterDef) kind = "def";
        else if (KEYWORDS.has(word)) kind = "keyword";
        else if (BUILTINS.has(word)) kind = "builtin";
        afterDef = word === "def" || word === "class";
      }
      fragment.appendChild(kind ? el("span", `tok-${kind}`, match) : document.createTextNode(match));
      last = offset + match.length;
      return match;
    });
    fragment.appendChild(document.createTextNode(code.slice(last) + "\n"));
    pre.replaceChildren(fragment);
  }

  // ------------------------------------------------------------------ editors
  function editor(cell, code) {
    const box = el("div", code ? "editor" : "editor plain");
    const pre = el("pre");
    pre.setAttribute("aria-hidden", "true");
    const area = el("textarea");
    area.dataset.role = "cell-source";
    area.spellcheck = false;
    area.setAttribute("aria-label", `source of cell ${cell.index}`);
    area.value = cell.source;
    const redraw = () => {
      if (code) highlight(pre, area.value);
      else pre.textContent = area.value + "\n";
      const dirty = area.value !== state.saved[cell.index];
      area.closest(".cell")?.classList.toggle("dirty", dirty);
      updateSaveState();
    };
    area.addEventListener("input", redraw);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !event.shiftKey && code) {
        event.preventDefault();
        area.setRangeText("    ", area.selectionStart, area.selectionEnd, "end");
        redraw();
      } else if (event.key === "Enter" && event.shiftKey) {
        const button = area.closest(".cell").querySelector("button[data-action=run-as-backtest]");
        if (button) { event.preventDefault(); button.click(); }
      }
    });
    box.append(pre, area);
    if (code) highlight(pre, cell.source);
    else pre.textContent = cell.source + "\n";
    state.editors[cell.index] = area;
    return box;
  }

  function input(param) {
    const label = el("label", null, param.name);
    let control;
    if (param.type === "bool") {
      control = el("select");
      ["True", "False"].forEach((v) => control.appendChild(el("option", null, v)));
      control.value = param.value ? "True" : "False";
    } else {
      control = el("input");
      control.type = "text";
      control.value = param.text;  // the server's spelling (0.0, [1, 2], text as is)
      control.spellcheck = false;
    }
    control.name = param.name;
    control.dataset.default = control.value;
    if (param.fixed) {  // an expression in the parameters cell: edit it in the source
      control.disabled = true;
      control.value = "(expression)";
    }
    if (param.help) label.title = param.help;
    label.title = `${label.title ? label.title + " · " : ""}${param.type}`;
    label.appendChild(control);
    return label;
  }

  function clearFieldErrors(scope) {
    scope.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    scope.querySelectorAll(".field-error").forEach((n) => n.remove());
  }

  function markFieldErrors(scope, fields) {
    Object.entries(fields || {}).forEach(([name, message]) => {
      const control = scope.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!control) return;
      control.setAttribute("aria-invalid", "true");
      control.parentElement.appendChild(el("span", "field-error", message));
    });
  }

  // ------------------------------------------------------------------ cells
  function renderCell(cell) {
    state.saved[cell.index] = cell.source;
    const node = el("section", `cell ${cell.type}`);
    node.dataset.cellIndex = String(cell.index);
    node.dataset.cellType = cell.type;
    const head = el("div", "cell-head", `[${cell.index}] ${cell.type}`);
    cell.tags.forEach((tag) => head.appendChild(el("span", "tag", tag)));
    node.appendChild(head);
    if (cell.type === "markdown") {  // shown once: rendered, or its source while editing
      const rendered = el("div", "rendered");
      rendered.innerHTML = cell.html; // the server's rendering of the user's own Markdown
      const source = editor(cell, false);
      source.hidden = true;
      const toggle = el("button", "edit-markdown", "Edit");
      toggle.type = "button";
      toggle.dataset.action = "edit-markdown";
      toggle.title = "edit this Markdown cell's source (double-click the text works too)";
      const flip = () => {
        const editing = source.hidden;
        source.hidden = !editing;
        rendered.hidden = editing;
        toggle.textContent = editing ? "Done" : "Edit";
        toggle.setAttribute("aria-pressed", String(editing));
        if (editing) source.querySelector("textarea").focus();
      };
      toggle.addEventListener("click", flip);
      rendered.addEventListener("dblclick", flip);
      head.appendChild(toggle);
      node.append(rendered, source);
      return node;
    }
    if (cell.parameters) {
      const form = el("form", "params-form");
      form.setAttribute("aria-label", "notebook parameters (used by Run as Backtest)");
      cell.parameters.forEach((p) => form.appendChild(input(p)));
      form.addEventListener("submit", (event) => event.preventDefault());
      form.addEventListener("input", (event) => {  // the same name on a signals cell follows
        const name = event.target.name;
        document.querySelectorAll(`.backtest [name="${CSS.escape(name)}"]`).forEach((c) => {
          if (c.value === c.dataset.default) { c.value = event.target.value; c.dataset.default = c.value; }
        });
      });
      node.appendChild(form);
    }
    node.appendChild(editor(cell, true));
    if (cell.signals) node.appendChild(backtestBar(cell));
    return node;
  }

  function backtestBar(cell) {
    const bar = el("form", "backtest");
    bar.setAttribute("aria-label", `Run cell ${cell.index} as a backtest`);
    cell.signals.forEach((p) => bar.appendChild(input(p)));
    const button = el("button", null, "Run as Backtest");
    button.type = "submit";
    button.dataset.action = "run-as-backtest";
    button.title = "Backtest this cell's signals with these parameters (Shift+Enter in the cell)";
    const status = el("span", "run-status");
    status.setAttribute("role", "status");
    bar.append(button, status);
    if (cell.signals_error) bar.appendChild(el("span", "field-error", cell.signals_error));
    bar.addEventListener("submit", (event) => {
      event.preventDefault();
      runCell(cell.index, bar, button, status);
    });
    return bar;
  }

  function formValues(scope) {
    const values = {};
    scope.querySelectorAll("input[name], select[name]").forEach((c) => {
      if (!c.disabled) values[c.name] = c.value;
    });
    return values;
  }

  function unsavedSources() {
    const sources = {};
    Object.entries(state.editors).forEach(([index, area]) => {
      if (area.value !== state.saved[index]) sources[index] = area.value;
    });
    return sources;
  }

  async function runCell(index, bar, button, status) {
    const node = bar.closest(".cell");
    node.querySelectorAll("[data-role=backtest-result], .cell-error").forEach((n) => n.remove());
    clearFieldErrors(bar);
    const settingsForm = document.querySelector(".params-form");
    if (settingsForm) clearFieldErrors(settingsForm);
    button.disabled = true;
    status.textContent = "running…";
    const started = performance.now();
    try {
      const result = await api(`/api/notebooks/${encodeURIComponent(DATA.name)}/run`, {
        cell: index, params: formValues(bar),
        settings: settingsForm ? formValues(settingsForm) : {}, sources: unsavedSources(),
      });
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      if (result.error) {
        status.textContent = `failed after ${seconds} s`;
        node.appendChild(el("p", "cell-error", result.error)).dataset.role = "backtest-error";
        return;
      }
      const how = result.kernel_started ? "kernel started"
        : result.ran_cells.length ? "earlier cells ran" : "warm kernel";
      status.textContent = `${seconds} s (${how})`;
      node.appendChild(showResult(result, seconds));
    } catch (error) {
      status.textContent = "";
      markFieldErrors(bar, error.payload && error.payload.errors);
      if (settingsForm) markFieldErrors(settingsForm, error.payload && error.payload.errors);
      node.appendChild(el("p", "cell-error", error.message)).dataset.role = "backtest-error";
    } finally {
      button.disabled = false;
    }
  }

  function showResult(result, seconds) {
    const box = el("div", "backtest-result");
    box.dataset.role = "backtest-result";
    const line = el("p", "muted small");
    const link = el("a", "run-id", result.run_id.slice(0, 8));
    link.href = `/?q=${encodeURIComponent(result.run_id)}`;
    link.title = "this run in the runs page";
    const ran = result.ran_cells.length ? ` · ran cells ${result.ran_cells.join(", ")} first` : "";
    line.append("run ", link, ` saved · ${seconds} s${ran}`);
    box.appendChild(line);
    const later = [];
    result.sections.forEach((section) => {
      if (INLINE_SECTIONS.includes(section.metadata.meridian_report)) {
        box.appendChild(sectionNode(section));
      } else {
        later.push(section);
      }
    });
    if (later.length) {
      const more = el("details");
      more.appendChild(el("summary", null, `The full report (${later.length} more sections)`));
      more.addEventListener("toggle", () => {
        if (more.open && more.children.length === 1) later.forEach((s) => more.appendChild(sectionNode(s)));
      });
      box.appendChild(more);
    }
    return box;
  }

  function sectionNode(section) {
    const figure = section.data["application/vnd.plotly.v1+json"];
    if (figure) {
      const node = el("div", "figure");
      withPlotly(() => {
        if (window.Plotly) {
          window.Plotly.newPlot(node, figure.data, Object.assign({}, figure.layout, { autosize: true }),
            { responsive: true, displaylogo: false });
        } else {
          node.textContent = "(charts need plotly.js, which did not load)";
        }
      });
      return node;
    }
    const node = el("div", "section");
    node.innerHTML = section.data["text/html"] || ""; // Meridian's report markup, text escaped
    return node;
  }

  let plotlyWaiters = null;
  function withPlotly(callback) {
    if (window.Plotly) { callback(); return; }
    if (plotlyWaiters) { plotlyWaiters.push(callback); return; }
    plotlyWaiters = [callback];
    const script = document.createElement("script");
    const done = () => { const w = plotlyWaiters; plotlyWaiters = null; w.forEach((f) => f()); };
    script.onload = done;
    script.onerror = done;
    script.src = DATA.plotly_src;
    document.head.appendChild(script);
  }

  // ------------------------------------------------------------------ save, extract
  function updateSaveState() {
    const count = Object.keys(unsavedSources()).length;
    $("save-state").textContent = count ? `${count} cell${count > 1 ? "s" : ""} changed, not saved` : "";
  }

  /* The file may change under the page (an editor, a git checkout): say so at once rather
     than at the next save, which would be refused. */
  const POLL_MS = 2000;
  async function watchFile() {
    const generation = state.generation;
    if (!state.saving) {
      try {
        const response = await fetch(`/api/notebooks/${encodeURIComponent(DATA.name)}?only=sha256`,
          { headers: { "X-Meridian-Token": DATA.token }, credentials: "same-origin" });
        const now = response.ok ? (await response.json()).sha256 : null;
        if (now && now !== state.sha && !state.saving && generation === state.generation) {
          showProblem(`${DATA.path} changed on disk since this page loaded it: reload the page ` +
                      "to see it (saving from here is refused; copy any edits you want to keep)");
        }
      } catch (error) { /* the server stopped: the next save says so */ }
    }
    setTimeout(watchFile, POLL_MS);
  }

  async function save() {
    const edits = unsavedSources();
    if (!Object.keys(edits).length) { $("save-state").textContent = "nothing to save"; return; }
    showProblem("");
    state.saving = true;
    const button = document.querySelector("button[data-action=save-notebook]");
    button.disabled = true;
    try {
      const fresh = await api(`/api/notebooks/${encodeURIComponent(DATA.name)}/save`,
                              { sha256: state.sha, edits });
      state.sha = fresh.sha256;
      state.generation += 1;  // a poll sent before this save must not call it a change
      fresh.cells.forEach((cell) => {
        if (cell.index in edits) {
          const old = document.querySelector(`[data-cell-index="${cell.index}"]`);
          old.replaceWith(renderCell(cell));
        }
      });
      showExtract(fresh.extract);
      $("save-state").textContent = `saved ${DATA.path}`;
    } catch (error) {
      showProblem(error.message);
      $("save-state").textContent = "not saved";
    } finally {
      state.saving = false;
      button.disabled = !DATA.editable;
    }
  }

  function showExtract(extract) {
    const label = $("extract-state");
    label.textContent = extract.message || "";
    label.className = `extract-state ${extract.state}`;
    label.dataset.state = extract.state;
    const button = document.querySelector("button[data-action=extract]");
    button.hidden = !DATA.editable || !["stale", "missing"].includes(extract.state);
  }

  async function extract() {
    showProblem("");
    try {
      showExtract(await api(`/api/notebooks/${encodeURIComponent(DATA.name)}/extract`, {}));
    } catch (error) {
      showProblem(error.message);
    }
  }

  async function restartKernel() {
    showProblem("");
    try {
      await api(`/api/notebooks/${encodeURIComponent(DATA.name)}/restart`, {});
      $("save-state").textContent = "kernel stopped: the next run starts a fresh one";
    } catch (error) {
      showProblem(error.message);
    }
  }

  // ------------------------------------------------------------------ pages
  function listPage() {
    $("list").hidden = false;
    $("subtitle").textContent = "Open a notebook to run its cells as backtests and edit it.";
    const list = $("notebook-list");
    DATA.notebooks.forEach((n) => {
      const item = el("li");
      const link = el("a", null, n.name);
      link.href = `/notebooks/${encodeURIComponent(n.name)}`;
      item.append(link, el("span", "muted small", ` ${n.path}${n.editable ? "" : " · example, read-only"}`));
      list.appendChild(item);
    });
    if (!DATA.notebooks.length) list.appendChild(el("li", "muted", "no notebooks yet: meridian new NAME"));
  }

  function notebookPage() {
    $("title").textContent = DATA.name;
    $("subtitle").textContent = `${DATA.path}${DATA.editable ? "" : " · a shipped example, read-only (meridian init copies it into your project)"}`;
    $("toolbar").hidden = false;
    const saveButton = document.querySelector("button[data-action=save-notebook]");
    saveButton.disabled = !DATA.editable;
    saveButton.addEventListener("click", save);
    document.querySelector("button[data-action=extract]").addEventListener("click", extract);
    document.querySelector("button[data-action=restart-kernel]")
      .addEventListener("click", restartKernel);
    showExtract(DATA.extract);
    const cells = $("cells");
    DATA.cells.forEach((cell) => cells.appendChild(renderCell(cell)));
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
    });
    setTimeout(watchFile, POLL_MS);
    window.addEventListener("beforeunload", (event) => {
      if (Object.keys(unsavedSources()).length) event.preventDefault();
    });
  }

  if (DATA.cells) notebookPage(); else listPage();
})();
