"""What the dashboard page is built from, without a browser: data, escaping, CSP, files."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading

import numpy as np
import pytest

from meridian import storage
from meridian._files import write_atomic
from meridian.dashboard import build_dashboard, refresh_dashboard
from meridian.dashboard.page import EQUITY_POINTS, SCALE, _split_equity, dashboard_data
from meridian.engine.metrics import METRIC_NAMES, format_metric
from meridian.pages import document, json_for_script


def _save(out, run_id, **extra):
    record = {"run_id": run_id, "strategy_name": "fld", "status": "success", "kind": "api",
              "params": {"fld_offset": 3}, **extra}
    return storage.save_run(record, out)


def _curve(n: int, start: str = "2020-01-01", scale: float = 1.0) -> dict:
    index = [d.isoformat() for d in np.array(
        [np.datetime64(start) + np.timedelta64(i, "D") for i in range(n)]).astype("M8[s]")
        .astype(object)]
    return {"index": index, "values": [scale * (100.0 + i) for i in range(n)]}


def test_runs_carry_formatted_metrics_and_scaled_equity_on_shared_axes(outputs):
    _save(outputs, "a" * 8 + "-0001", metrics={"sharpe_ratio": 1.234, "total_return": 0.5},
          equity=_curve(800), timestamp="2024-01-01T00:00:00")
    _save(outputs, "b" * 8 + "-0002", metrics={"sharpe_ratio": None}, equity=_curve(800, scale=2),
          timestamp="2024-01-02T00:00:00")
    _save(outputs, "c" * 8 + "-0003", equity=_curve(30, "2021-06-01"),
          timestamp="2024-01-03T00:00:00")
    data = dashboard_data(outputs)
    names = [m["key"] for m in data["metrics"]]
    assert names == list(METRIC_NAMES)
    newest, middle, oldest = data["runs"]
    assert [r["id"][0] for r in data["runs"]] == ["c", "b", "a"]  # newest first
    sharpe = names.index("sharpe_ratio")
    assert oldest["m"][sharpe] == 1.234 and oldest["f"][sharpe] == "1.23"
    assert middle["m"][sharpe] is None and middle["f"][sharpe] == format_metric("x", None)
    # the 800-point curves were stored as 500 and share one 200-point axis
    assert len(data["axes"]) == 2 and oldest["a"] == middle["a"]
    assert len(data["axes"][oldest["a"]]) == len(oldest["q"]) <= EQUITY_POINTS
    assert oldest["q"][0] == middle["q"][0] == SCALE  # growth of 1.0, whatever the capital
    assert oldest["q"] == middle["q"]
    assert len(newest["q"]) == 30 and newest["q"][-1] == round(129 / 100 * SCALE)
    ranks = {m["key"]: m["rank"] for m in data["metrics"]}
    assert ranks["volatility"] == "lower" and ranks["sharpe_ratio"] == "higher"
    assert ranks["num_trades"] is None  # more trades is not better: never bolded


def test_failed_runs_have_their_error_and_no_curve(outputs):
    _save(outputs, "f" * 8, status="failed", error="ValueError: boom\nsecond line")
    (run,) = dashboard_data(outputs)["runs"]
    assert run["st"] == "failed" and run["e"] == "ValueError: boom\nsecond line"
    assert run["a"] == -1 and run["q"] == [] and run["r"] is None


def test_gaps_and_zero_starts_in_a_curve(outputs):
    _save(outputs, "g" * 8, equity={"index": ["2020-01-01", "2020-01-02", "2020-01-03"],
                                    "values": [0.0, None, 50.0]})
    (run,) = dashboard_data(outputs)["runs"]
    assert run["q"] == [0, None, SCALE]  # normalized by the first usable (non-zero) value


def test_report_links_only_for_existing_files_relative_to_the_page(outputs):
    folder = outputs / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<html></html>")
    _save(outputs, "r1", report_path=str(folder / "report.html"))
    _save(outputs, "r2", report_path=str(outputs / "runs" / "r2" / "report.html"))  # missing
    links = {r["id"]: r["r"] for r in dashboard_data(outputs)["runs"]}
    assert links == {"r1": "runs/r1/report.html", "r2": None}


def test_split_equity_falls_back_to_json_for_other_layouts():
    assert _split_equity('{"index":["a"],"values":[1.5]}') == ('["a"]', "[1.5]")
    assert _split_equity('{"values": [1.5], "index": ["a"]}') == ('["a"]', "[1.5]")
    assert _split_equity(None) == ("[]", "[]")


def test_json_for_script_cannot_close_its_element():
    text = json_for_script({"p": "</script><script>alert(1)</script><!--", "u": "\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"p": "</script><script>alert(1)</script><!--", "u": "\u2028&"}


def test_document_allows_exactly_its_own_scripts():
    script = "console.log('hi')"
    page = document("t <title>", "<p>body</p>", [script], data={"x": "</script>"})
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src &#x27;self&#x27; &#x27;sha256-{digest}&#x27;;" in policy
    assert "default-src &#x27;none&#x27;" in policy and "unsafe-inline" not in \
        policy.split("style-src")[0]
    assert "<title>t &lt;title&gt;</title>" in page
    assert page.count("</script>") == 2  # the data element and the one script


def test_every_build_is_complete_even_when_builds_race(outputs):
    for n in range(20):
        _save(outputs, f"run{n:04d}", equity=_curve(50), timestamp=f"2024-01-01T00:00:{n:02d}")
    errors: list[BaseException] = []

    def build():
        try:
            build_dashboard(outputs)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    html = (outputs / "index.html").read_text()
    assert html.rstrip().endswith("</html>") and all(f"run{n:04d}" in html for n in range(20))
    assert [p.name for p in outputs.iterdir() if p.name.endswith(".tmp")] == []


def test_refresh_never_raises(outputs, caplog):
    outputs.mkdir(parents=True)
    (outputs / "index.html").mkdir()  # a directory where the page should go: replace fails
    assert refresh_dashboard(outputs) is None
    assert "dashboard not updated" in caplog.text


def test_write_atomic_leaves_no_temporary_file_on_failure(tmp_path):
    target = tmp_path / "page.html"
    write_atomic(target, "one")
    assert target.read_text() == "one"
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "dir.html", "two")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.html", "page.html"]
