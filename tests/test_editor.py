"""The Notebooks page of `meridian ui` for real: a project made by `meridian init` under git,
the CLI serving it, a real kernel running the cells, a real Chromium clicking."""

from __future__ import annotations

import hashlib
import subprocess
import time

import pytest
from conftest import Server, meridian, watched_page
from playwright.sync_api import expect

from meridian import storage
from meridian.authoring.edit import parse
from meridian.authoring.init import init_project

SIGNALS_CELL = 4  # in the shipped fld.py


def git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root, _ = init_project(tmp_path_factory.mktemp("editor") / "proj")
    git(root, "init", "-q")
    git(root, "-c", "user.email=q@example.com", "-c", "user.name=Quant", "add", "-A")
    git(root, "-c", "user.email=q@example.com", "-c", "user.name=Quant", "commit", "-qm", "init")
    server = Server(root / "outputs", cwd=root)
    yield server, root
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def notebook(browser, served):
    """The fld notebook page, opened with the token like the printed URL; fails on any page
    error or CSP violation."""
    server, root = served
    git(root, "checkout", "--", ".")  # each test starts from the committed notebook
    with watched_page(browser, viewport={"width": 1300, "height": 900}) as page:
        page.goto(f"{server.base}/notebooks/fld?token={server.token}")
        page.wait_for_selector("button[data-action=run-as-backtest]")
        yield page


def _run_button_cell(page):
    return page.locator("[data-cell-index]",
                        has=page.locator("button[data-action=run-as-backtest]"))


def test_run_as_backtest_shows_the_result_and_records_the_cell_run(notebook, served):
    server, root = served
    cells = _run_button_cell(notebook)
    expect(cells).to_have_count(1)  # only the cell defining signals has the button
    cell = cells.first
    assert cell.get_attribute("data-cell-index") == str(SIGNALS_CELL)
    assert [cell.locator(f"[name={n}]").input_value()
            for n in ("fld_offset", "cot_threshold", "allow_short")] == ["10", "0.0", "True"]
    cell.locator("[name=fld_offset]").fill("17")
    cell.locator("button[data-action=run-as-backtest]").click()
    result = cell.locator("[data-role=backtest-result]")
    result.wait_for(timeout=120_000)
    assert "sharpe" in result.inner_text().lower()  # the cards (shown upper-case)
    expect(result.locator(".js-plotly-plot")).to_have_count(2)  # equity, drawdown
    runs = [r for r in storage.load_all_runs(server.out) if r["kind"] == "cell"]
    assert len(runs) == 1
    run = runs[0]
    assert run["params"] == {"fld_offset": 17, "cot_threshold": 0.0, "allow_short": True}
    assert type(run["params"]["fld_offset"]) is int and run["strategy_name"] == "fld"
    source = parse((root / "notebooks/fld.py").read_text(), "fld.py").cells[SIGNALS_CELL].source
    assert run["code"] == {"notebook": "notebooks/fld.py", "cell_index": SIGNALS_CELL,
                           "cell_sha256": hashlib.sha256(source.encode()).hexdigest()}
    assert run["run_id"][:8] in result.inner_text()
    status, details = server.request(f"/api/runs/{run['run_id']}")  # the runs page's panel
    assert status == 200 and details["rerun"]["notebook"] == "/notebooks/fld"
    assert details["rerun"]["refusal"].endswith("Notebooks → fld, cell 4")
    # the same metrics as the notebook's own backtest of those parameters
    assert run["data"]["cot_path"]  # the notebook's data cell ran: prices with the COT index

    # a second click reuses the warm kernel: no earlier cell runs again
    started = time.perf_counter()
    cell.locator("button[data-action=run-as-backtest]").click()
    expect(cell.locator(".run-status")).to_contain_text("warm kernel", timeout=60_000)
    seconds = time.perf_counter() - started
    assert "ran cells" not in cell.locator("[data-role=backtest-result]").inner_text()
    print(f"second Run as Backtest: {seconds:.2f} s")
    assert len([r for r in storage.load_all_runs(server.out) if r["kind"] == "cell"]) == 2
    # Restart kernel: the next click starts a fresh one and runs the earlier cells again
    notebook.click("button[data-action=restart-kernel]")
    expect(notebook.locator("#save-state")).to_contain_text("kernel stopped")
    cell.locator("button[data-action=run-as-backtest]").click()
    expect(cell.locator(".run-status")).to_contain_text("kernel started", timeout=120_000)
    expect(cell.locator("[data-role=backtest-result]")).to_contain_text("ran cells 1, 2 first")


def test_bad_values_and_failing_cells_are_one_line_inline(notebook, served):
    server, _ = served
    before = len(storage.load_all_runs(server.out))
    cell = _run_button_cell(notebook).first
    button = cell.locator("button[data-action=run-as-backtest]")
    cell.locator("[name=fld_offset]").fill("ten")
    button.click()
    error = cell.locator(".field-error")
    expect(error).to_contain_text("fld_offset")
    expect(error).to_contain_text("int")
    expect(cell.locator("[name=fld_offset]")).to_have_attribute("aria-invalid", "true")
    cell.locator("[name=fld_offset]").fill("0")  # PARAM_RANGES says [1, inf)
    button.click()
    expect(cell.locator(".field-error")).to_contain_text("[1, inf)")
    # a cell that raises (an unsaved edit is what runs): its error, one line, under the cell
    cell.locator("[name=fld_offset]").fill("12")
    editor = cell.locator("[data-role=cell-source]")
    editor.fill(editor.input_value().replace('    fld = shift(',
                                             '    raise RuntimeError("no data today")\n'
                                             '    fld = shift(', 1))
    button.click()
    failure = cell.locator("[data-role=backtest-error]")
    expect(failure).to_have_text("signals failed: RuntimeError: no data today", timeout=120_000)
    assert len(storage.load_all_runs(server.out)) == before  # nothing recorded


def test_edit_a_markdown_cell_save_and_git_shows_only_that_change(notebook, served):
    _, root = served
    first = notebook.locator("[data-cell-index='0']")
    editor = first.locator("[data-role=cell-source]")
    expect(editor).to_be_hidden()  # a Markdown cell shows once: rendered, not also its source
    expect(first.locator(".rendered")).to_be_visible()
    first.locator("button[data-action=edit-markdown]").click()
    expect(first.locator(".rendered")).to_be_hidden()
    editor.fill(editor.input_value() + "\n\nTested on the front month only.")
    notebook.click("button[data-action=save-notebook]")
    expect(notebook.locator("#save-state")).to_have_text("saved notebooks/fld.py")
    expect(first.locator(".rendered")).to_contain_text("Tested on the front month only.")
    changed = [line for line in git(root, "diff", "-U0", "notebooks/fld.py").splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["+#", "+# Tested on the front month only."]


def test_a_concurrent_edit_on_disk_makes_the_save_refuse(notebook, served):
    _, root = served
    path = root / "notebooks/fld.py"
    path.write_text(path.read_text().replace("fld_offset = 10", "fld_offset = 12"))
    on_disk = path.read_text()
    # the page notices by itself, before any save
    expect(notebook.locator("#problem")).to_contain_text("changed on disk", timeout=10_000)
    notebook.locator("[data-cell-index='3'] button[data-action=edit-markdown]").click()
    editor = notebook.locator("[data-cell-index='3'] [data-role=cell-source]")
    editor.fill("## My strategy")
    notebook.click("button[data-action=save-notebook]")
    expect(notebook.locator("#problem")).to_contain_text("changed on disk since this page "
                                                         "loaded it")
    assert path.read_text() == on_disk  # nothing overwritten
    expect(notebook.locator("#save-state")).to_have_text("not saved")


def test_the_page_shows_extract_staleness_and_extracts(notebook, served):
    _, root = served
    state = notebook.locator("#extract-state")
    module = root / "strategies/fld.py"
    module.unlink(missing_ok=True)
    notebook.reload()
    expect(state).to_have_attribute("data-state", "missing")
    notebook.click("button[data-action=extract]")
    expect(state).to_have_attribute("data-state", "current")
    assert module.is_file()
    assert meridian("extract", "--check", "notebooks/fld.py", cwd=root).returncode == 0
    notebook.locator("[data-cell-index='5'] button[data-action=edit-markdown]").click()
    editor = notebook.locator("[data-cell-index='5'] [data-role=cell-source]")
    editor.fill(editor.input_value() + " More.")
    notebook.click("button[data-action=save-notebook]")
    expect(state).to_have_attribute("data-state", "stale")
    expect(notebook.locator("button[data-action=extract]")).to_be_visible()
    assert meridian("extract", "--check", "notebooks/fld.py", cwd=root).returncode == 1


def test_the_notebook_list_and_unknown_names(browser, served):
    server, _ = served
    page = browser.new_page()
    page.goto(f"{server.base}/notebooks?token={server.token}")
    links = page.locator("#notebook-list a")
    expect(links).to_have_text(["fld", "sma_cross"])
    page.close()
    status, answer = server.request("/api/notebooks/nope")
    assert status == 404 and answer["error"].startswith("no notebook 'nope'; notebooks: fld")
    status, answer = server.request("/api/notebooks/fld/run", {"cell": 0})
    assert status == 400 and "defines no `def signals(data, ...)`" in answer["error"]
    status, answer = server.request("/api/notebooks/fld/run",
                                    {"cell": SIGNALS_CELL, "params": {"fld_ofset": "3"}})
    assert status == 400 and answer["error"] == (
        "unknown parameter 'fld_ofset' of signals; its parameters: fld_offset, cot_threshold, "
        "allow_short")
    status, _ = server.request("/api/notebooks/fld/save", {"sha256": "x", "edits": {}},
                               origin="http://evil.test")
    assert status == 403


def test_a_cell_that_does_not_parse_is_refused_before_the_kernel(served):
    server, _ = served
    status, answer = server.request("/api/notebooks/fld/run", {
        "cell": SIGNALS_CELL, "sources": {str(SIGNALS_CELL): "def signals(data, x=1:\n  pass"}})
    assert status == 400 and answer["error"].startswith(
        f"cell {SIGNALS_CELL}: syntax error in the cell, line 1:")


def test_shipped_examples_open_read_only(project):
    from meridian.dashboard.notebooks import Notebooks, find, listing
    from meridian.dashboard.reruns import FormErrors

    (project / "notebooks" / "sma_cross.py").unlink()  # now only the shipped example has it
    path, editable = find("sma_cross")
    assert not editable and not path.is_relative_to(project)
    assert {n["name"]: n["editable"] for n in listing()} == {"fld": True, "sma_cross": False}
    before = path.read_bytes()
    with pytest.raises(FormErrors, match="shipped inside Meridian; `meridian init` copies it"):
        Notebooks(project / "outputs").save("sma_cross", {"sha256": "x", "edits": {"0": "# x"}})
    assert path.read_bytes() == before


def test_the_parameters_form_is_checked_before_the_kernel(served):
    server, _ = served
    status, answer = server.request("/api/notebooks/fld/run", {
        "cell": SIGNALS_CELL, "settings": {"data_path": "/no/such/prices.csv"}})
    assert status == 400 and answer["errors"] == {
        "data_path": "data_path: no such file '/no/such/prices.csv'"}
    status, answer = server.request("/api/notebooks/fld/run", {
        "cell": SIGNALS_CELL, "settings": {"commission": "lots"}})
    assert status == 400 and "commission" in answer["errors"]
    status, answer = server.request("/api/notebooks/fld/run", {
        "cell": SIGNALS_CELL, "settings": {"start": "2020-01-01", "end": "2019-01-01"}})
    assert status == 400 and "start" in answer["error"]


LISTY = '''# %% [markdown]
# A notebook whose parameters are not all numbers

# %% tags=["parameters"]
windows = [5, 10]  # moving averages to average
label = "demo"  # free text

# %%
import pandas as pd
from meridian.data import load_market_data

data, _ = load_market_data("", "", "")

# %%
def signals(data, lookback=5):
    close = data["Close"]
    mean = sum(close.rolling(w).mean() for w in windows) / len(windows)
    return (close > mean).astype(float) * (lookback > 0)
'''


def test_list_and_text_parameters_round_trip_through_the_form(served):
    server, root = served
    (root / "notebooks" / "listy.py").write_text(LISTY)
    try:
        status, page = server.request("/api/notebooks/listy")
        fields = {f["name"]: f["text"] for f in page["cells"][1]["parameters"]}
        assert status == 200 and fields == {"windows": "[5, 10]", "label": "demo"}
        status, answer = server.request("/api/notebooks/listy/run", {
            "cell": 3, "params": {"lookback": "5"}, "settings": fields})
        assert status == 200 and answer["error"] is None and answer["run_id"]
        status, answer = server.request("/api/notebooks/listy/run", {
            "cell": 3, "settings": {"windows": "[5, 20, 50]", "label": "wider"}})
        assert status == 200 and answer["error"] is None and answer["ran_cells"] == [1, 2]
        status, answer = server.request("/api/notebooks/listy/run", {
            "cell": 3, "settings": {"windows": "5"}})
        assert status == 400 and "windows" in answer["errors"]
    finally:
        (root / "notebooks" / "listy.py").unlink()
