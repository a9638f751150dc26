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
from meridian.dashboard import page as page_module
from meridian.dashboard.page import CHUNK_DIR, CURVE_POINTS, SCALE, chunks_of, update_dashboard
from meridian.engine.metrics import KEY_METRICS, METRIC_NAMES, format_metric
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


def _chunks(out, kind: str) -> dict[int, dict]:
    """The payloads of the page's chunk files, as the browser receives them."""
    found = {}
    for path in sorted((out / CHUNK_DIR).glob(f"{kind}-*.js")):
        text = path.read_text()
        head = f'window.meridianChunk("{kind}",'
        assert text.startswith(head) and text.endswith(");\n")
        number, payload = text[len(head):-3].split(",", 1)
        found[int(number)] = json.loads(payload)
    return found


def _rows(out) -> list[dict]:
    """Every row of the built page, decoded as dashboard.js decodes them."""
    rows = []
    for chunk in _chunks(out, "rows").values():
        for i, run_id in enumerate(chunk["id"]):
            def coded(column, i=i):
                return column["v"][column["i"][i]]
            rows.append({"id": run_id, "seq": chunk["seq"][i],
                         "status": coded(chunk["status"]),
                         "params_text": coded(chunk["params_text"]),
                         "error": chunk["error"][i], "report": chunk["report"][i],
                         "metrics": {k: v[i] for k, v in chunk["metrics"].items()},
                         "formatted": {k: coded(v) for k, v in chunk["formatted"].items()},
                         "params": {k: coded(v) for k, v in chunk["params"].items()
                                    if coded(v) is not None}})
    return rows


def _details(out) -> tuple[list, dict]:
    axes, runs = [], {}
    for chunk in _chunks(out, "runs").values():
        for run_id, details in chunk["runs"].items():
            if "axis" in details:
                details = {**details, "x": chunk["axes"][details["axis"]]}
            runs[run_id] = details
        axes += chunk["axes"]
    return axes, runs


def test_rows_carry_formatted_key_metrics_and_details_scaled_equity_on_shared_axes(outputs):
    _save(outputs, "a" * 8 + "-0001", metrics={"sharpe_ratio": 1.234, "total_return": 0.5,
                                               "my_metric": 7.0},
          equity=_curve(800), timestamp="2024-01-01T00:00:00")
    _save(outputs, "b" * 8 + "-0002", metrics={"sharpe_ratio": None}, equity=_curve(800, scale=2),
          timestamp="2024-01-02T00:00:00")
    _save(outputs, "c" * 8 + "-0003", equity=_curve(30, "2021-06-01"),
          timestamp="2024-01-03T00:00:00")
    build_dashboard(outputs)
    rows = {r["id"][0]: r for r in _rows(outputs)}
    assert set(rows["a"]["metrics"]) == set(KEY_METRICS) and "sharpe_ratio" in KEY_METRICS
    assert rows["a"]["metrics"]["sharpe_ratio"] == 1.234
    assert rows["a"]["formatted"]["sharpe_ratio"] == "1.23"
    assert rows["b"]["metrics"]["sharpe_ratio"] is None
    assert rows["b"]["formatted"]["sharpe_ratio"] == format_metric("x", None)
    assert rows["a"]["params"] == {"fld_offset": "3"}
    assert rows["a"]["params_text"] == "fld_offset=3"
    axes, details = _details(outputs)
    oldest, middle, newest = (details[rows[k]["id"]] for k in "abc")
    assert oldest["metric_names"][-1] == "my_metric"  # any metric, by name
    assert oldest["formatted"][-1] == "7.00"
    # the 800-point curves were stored as 250 and share one CURVE_POINTS axis
    assert len(axes) == 2 and oldest["axis"] == middle["axis"]
    assert len(oldest["x"]) == len(oldest["growth"]) == CURVE_POINTS
    assert oldest["growth"][0] == middle["growth"][0] == SCALE  # growth of 1.0, any capital
    assert oldest["growth"] == middle["growth"]
    assert len(newest["growth"]) == 30 and newest["growth"][-1] == round(129 / 100 * SCALE)
    shell = json.loads(re.search(r'id="meridian-data">(.*?)</script>',
                                 (outputs / "index.html").read_text()).group(1))
    ranks = {m["key"]: m["rank"] for m in shell["metrics"]}
    assert [m["key"] for m in shell["metrics"]] == list(METRIC_NAMES)
    assert ranks["volatility"] == "lower" and ranks["sharpe_ratio"] == "higher"
    assert ranks["num_trades"] is None  # more trades is not better: never bolded
    assert shell["chunks"] == [0] and "runs" not in shell  # rows live in the chunk files


def test_failed_runs_have_their_error_and_no_curve(outputs):
    _save(outputs, "f" * 8, status="failed", error="ValueError: boom\nsecond line")
    build_dashboard(outputs)
    (row,) = _rows(outputs)
    assert row["status"] == "failed" and row["error"] == "ValueError: boom\nsecond line"
    assert row["report"] is None and "growth" not in _details(outputs)[1]["f" * 8]


def test_gaps_and_zero_starts_in_a_curve(outputs):
    _save(outputs, "g" * 8, equity={"index": ["2020-01-01", "2020-01-02", "2020-01-03"],
                                    "values": [0.0, None, 50.0]})
    build_dashboard(outputs)
    assert _details(outputs)[1]["g" * 8]["growth"] == [0, None, SCALE]  # the first usable value


def test_report_links_only_for_existing_files_relative_to_the_page(outputs):
    for name in ("r1", "r3"):
        (outputs / "runs" / name).mkdir(parents=True)
    (outputs / "runs" / "r1" / "report.html").write_text("<html></html>")
    (outputs / "runs" / "r3" / "other.html").write_text("<html></html>")
    _save(outputs, "r1", report_path=str(outputs / "runs" / "r1" / "report.html"))
    _save(outputs, "r2", report_path=str(outputs / "runs" / "r2" / "report.html"))  # missing
    _save(outputs, "r3", report_path=str(outputs / "runs" / "r3" / "other.html"))
    build_dashboard(outputs)
    links = {r["id"]: r["report"] for r in _rows(outputs)}
    assert links == {"r1": 1, "r2": None, "r3": "runs/r3/other.html"}  # 1: the usual place


def test_a_new_run_rewrites_its_chunk_and_the_shell_only(outputs, monkeypatch):
    monkeypatch.setattr(page_module, "CHUNK", 10)
    for n in range(25):
        _save(outputs, f"run{n:04d}", timestamp=f"2024-01-01T00:00:{n:02d}")
    build_dashboard(outputs)
    assert sorted(_chunks(outputs, "rows")) == [0, 1, 2]  # seq 1-9, 10-19, 20-25
    files = {p.name: p.stat().st_mtime_ns for p in (outputs / CHUNK_DIR).iterdir()}
    _save(outputs, "run0025", timestamp="2024-01-02T00:00:00")
    update_dashboard(outputs, ["run0025"])
    changed = {p.name for p in (outputs / CHUNK_DIR).iterdir()
               if files.get(p.name) != p.stat().st_mtime_ns}
    assert changed == {"rows-00002.js", "runs-00002.js"}
    assert "run0025" in {r["id"] for r in _rows(outputs)}
    # deleting every run of a chunk removes its files and its entry in the shell
    doomed = [f"run{n:04d}" for n in range(9)]
    chunks = chunks_of(doomed, outputs)
    storage.delete_runs(doomed, outputs)
    update_dashboard(outputs, chunks=chunks)
    assert sorted(_chunks(outputs, "rows")) == [1, 2]
    assert '"chunks":[1,2]' in (outputs / "index.html").read_text()
    assert len(_rows(outputs)) == 17


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
    assert html.rstrip().endswith("</html>")
    assert {r["id"] for r in _rows(outputs)} == {f"run{n:04d}" for n in range(20)}
    assert [p.name for p in outputs.rglob("*.tmp")] == []


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
