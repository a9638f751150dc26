"""Reports a quant reads first: the one report layout, light files, standalone copies,
exported notebooks, provenance, exact reruns with drift warnings, tags — in a real Chromium
with the network cut."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, meridian
from registry_samples import failing_run

from meridian.api import run_backtest
from meridian.storage import load_all_runs, load_run_by_id, save_run, search_runs


@pytest.fixture(scope="module")
def fld_run(tmp_path_factory):
    """One `meridian run fld` on a copy of the sample as the user's own CSV."""
    base = tmp_path_factory.mktemp("report")
    from meridian.data import load_sample

    prices = base / "prices.csv"
    load_sample()[["Open", "High", "Low", "Close", "Volume"]].to_csv(prices, index_label="Date")
    out = base / "outputs"
    ran = meridian("run", "fld", "fld_offset=15", f"data_path={prices}", "--output-dir",
                   str(out))
    assert ran.returncode == 0, ran.stderr
    (record,) = load_all_runs(out)
    return out, record, prices


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20_000)
    return page, errors


def test_the_report_opens_on_its_summary_with_every_section(fld_run, browser):
    out, record, _ = fld_run
    report = Path(record["report_path"])
    assert report.stat().st_size <= 1_500_000  # plotly.js is shared, not inlined
    assert (out / "assets").is_dir() and len(list((out / "assets").glob("plotly-*.js"))) == 1
    page, errors = _open(browser, report)
    text = page.inner_text("body")
    header = page.locator(".mr-header")
    assert record["run_id"] in header.inner_text()
    assert header.bounding_box()["y"] < 200  # the first thing on screen
    every_word = page.evaluate("document.body.textContent")  # folded code included
    assert every_word.index(record["run_id"][:8]) < every_word.index("def signals")
    assert page.locator(".js-plotly-plot").count() >= 6  # equity … price: all rendered
    assert "Buy & hold" in page.locator(".js-plotly-plot").first.inner_text()
    for fact in ("fld_offset=15", "Data SHA-256", "3,392 bars", "prices.csv",
                 "daily bars, 252 a year (inferred)"):
        assert fact in text, fact
    changed = page.locator(".mr-param.changed")
    assert changed.count() == 1 and changed.inner_text() == "fld_offset=15"
    code = page.locator("main > .jp-CodeCell .jp-Cell-inputWrapper").first
    assert not code.is_visible()  # folded, not gone
    page.click("#meridian-code-toggle")
    assert code.is_visible()
    trades = pd.read_csv(report.parent / "trades.csv")
    assert len(trades) == record["trades_count"] > 40
    rows = page.locator("table.mr-trades tbody tr")
    assert rows.count() == 41  # first and last 20, and a row that says how many lie between
    assert rows.nth(20).inner_text().startswith(f"… {len(trades) - 40:,} trades not shown …")
    # the charts use the window (1400 px), and nothing of theirs lies under plotly's toolbar
    for chart in page.locator(".js-plotly-plot").all()[:3]:
        assert chart.bounding_box()["width"] > 1100
        chart.hover()
        bar = chart.locator(".modebar").bounding_box()
        for item in chart.locator(".legend, .updatemenu-container, .gtitle").all():
            box = item.bounding_box()
            if box is not None and box["width"]:
                apart = (box["x"] + box["width"] <= bar["x"] or box["y"] >= bar["y"]
                         + bar["height"] or box["y"] + box["height"] <= bar["y"])
                assert apart, "a legend, button or title under the toolbar"
    titles = page.locator(".js-plotly-plot .gtitle").evaluate_all(
        "nodes => nodes.map(n => n.textContent)")
    assert "Price and trades" in titles and not [t for t in titles if "exit reason" in t]
    page.close()
    assert errors == []


def test_a_standalone_copy_renders_alone(fld_run, browser, tmp_path):
    out, record, _ = fld_run
    alone = tmp_path / "alone" / "share.html"
    alone.parent.mkdir()
    made = meridian("report", record["run_id"][:8], "--standalone", "-o", str(alone),
                    "--output-dir", str(out))
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in alone.parent.iterdir()) == ["share.html"]
    page, errors = _open(browser, alone)
    assert page.locator(".js-plotly-plot").count() >= 6 and errors == []
    page.close()


def test_a_notebook_of_ones_own_with_backtest_cells_exports_with_live_charts(
        browser, tmp_path, monkeypatch):
    from meridian.pipeline.execute import execute
    from meridian.pipeline.notebooks import read_notebook

    monkeypatch.setenv("MERIDIAN_HOME", str(tmp_path / "outputs"))
    executed = tmp_path / "mine.ipynb"
    assert execute(read_notebook(ROOT / "tests" / "notebooks" / "backtest_magic.py"),
                   executed, {}, cwd=tmp_path) is None
    exported = meridian("report", str(executed), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".html") == ["mine.html"]
    page, errors = _open(browser, tmp_path / "mine.html")
    assert page.locator(".js-plotly-plot").count() >= 2 and errors == []
    assert "magic-notebook" in page.inner_text(".mr-header")
    page.close()


def test_rerun_reproduces_exactly_then_warns_when_the_data_changed(fld_run, tmp_path):
    out, record, prices = fld_run
    copy = tmp_path / "outputs"
    shutil.copytree(out, copy)
    again = meridian("rerun", record["run_id"][:8], "--output-dir", str(copy))
    assert again.returncode == 0, again.stderr
    assert "metrics identical to the original run" in again.stdout
    assert "warning" not in again.stderr
    child = next(r for r in load_all_runs(copy) if r.get("parent_id") == record["run_id"])
    assert child["metrics"] == record["metrics"] and child["params"] == record["params"]
    assert child["changed"] == []  # nothing differs from the original: nothing highlighted
    edited = meridian("rerun", record["run_id"][:8], "-p", "cot_threshold", "0.5",
                      "--output-dir", str(copy))
    assert edited.returncode == 0, edited.stderr
    grandchild = max((r for r in load_all_runs(copy) if r.get("parent_id") == record["run_id"]),
                     key=lambda r: r["timestamp"])
    assert grandchild["changed"] == ["cot_threshold"]
    page = Path(grandchild["report_path"]).read_text()
    highlighted = page.split('class="mr-param changed" title="set for this run">')[1:]
    assert [part.split("=")[0] for part in highlighted] == ["cot_threshold"]
    original = prices.read_text()
    try:
        with prices.open("a") as stream:
            stream.write("2030-01-01,100,101,99,100,1000\n")
        drifted = meridian("rerun", record["run_id"][:8], "--output-dir", str(copy))
    finally:
        prices.write_text(original)
    assert "warning: the data file" in drifted.stderr and "changed" in drifted.stderr
    assert drifted.stderr.index("warning") < len(drifted.stderr)
    assert "metrics differ from the original run" in drifted.stdout


def test_every_kind_of_run_records_its_provenance(fld_run, tmp_path):
    _, record, prices = fld_run
    assert record["kind"] == "notebook"
    assert record["data"]["sha256"] and record["data"]["bars"] == 3392
    assert record["environment"]["python"] and "pandas" in record["environment"]["packages"]
    assert record["environment"]["git"] is None or len(record["environment"]["git"]["commit"]) == 40
    assert record["code"]["notebook_sha256"] and record["changed"] == ["fld_offset", "data_path"]
    out = tmp_path / "outputs"
    api = run_backtest("fld", {"fld_offset": 12}, initial_capital=50_000, commission=0.001,
                       slippage=0.0002, data=str(prices))
    save_run(api.to_dict(), out)
    saved = load_run_by_id(api.run_id, out)
    assert saved["kind"] == "api"
    assert saved["settings"]["initial_capital"] == 50_000
    assert saved["settings"]["commission"] == 0.001 and saved["settings"]["slippage"] == 0.0002
    assert saved["data"]["path"] == str(prices) and saved["data"]["sha256"]
    assert saved["code"]["module"].endswith("fld.py") and saved["changed"] == ["fld_offset"]
    failed = failing_run()
    save_run(failed.to_dict(), out)
    shown = meridian("runs", "show", failed.run_id[:8], "--traceback", "--output-dir", str(out))
    assert "ValueError: need 1 <= fast < slow" in shown.stdout and "Traceback" in shown.stdout
    assert load_run_by_id(failed.run_id, out)["params"] == {"fast": 30, "slow": 20}


def test_tags_and_notes(fld_run, tmp_path):
    out, record, _ = fld_run
    copy = tmp_path / "outputs"
    shutil.copytree(out, copy)
    short = record["run_id"][:8]
    tagged = meridian("runs", "tag", short, "keeper", "fld", "--note", "best so far",
                      "--output-dir", str(copy))
    assert tagged.returncode == 0 and "keeper, fld" in tagged.stdout
    listed = meridian("runs", "list", "--tag", "keeper", "--output-dir", str(copy))
    assert short in listed.stdout
    assert search_runs(tag="keeper", output_dir=copy)[0]["note"] == "best so far"
    assert json.loads((copy / "runs" / record["run_id"] / "run.json").read_text())["tags"] == [
        "keeper", "fld"]  # the record file, not only the index
    meridian("runs", "untag", short, "keeper", "--output-dir", str(copy))
    assert search_runs(tag="keeper", output_dir=copy) == []
    bad = meridian("runs", "tag", short, "two words", "--output-dir", str(copy))
    assert bad.returncode == 2 and "a tag is one word" in bad.stderr


def test_backtest_magic_tags_its_run(tmp_path):
    code = ("from IPython.testing.globalipapp import start_ipython\n"
            "shell = start_ipython()\nshell.run_line_magic('load_ext', 'meridian')\n"
            "shell.run_cell_magic('backtest', '--tag idea --tag fld lookback=5', "
            "'def signals(data, lookback=3):\\n    return data[\"Close\"] * 0 + 1\\n')\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT,
                   env={**__import__("os").environ, "MERIDIAN_HOME": str(tmp_path)})
    (run,) = load_all_runs(tmp_path)
    assert run["kind"] == "magic" and run["tags"] == ["idea", "fld"]
    assert run["params"] == {"lookback": 5} and run["code"]["cell_sha256"]
