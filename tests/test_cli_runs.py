"""`meridian runs list|search|show|compare|delete|stats` and `meridian dashboard`, run as the
real CLI in a subprocess over the samples registry (tests/registry_samples.py)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import meridian, page_text

from meridian import storage
from meridian.engine.metrics import format_metric


@pytest.fixture
def scratch(samples, tmp_path) -> Path:
    """A private copy of the samples' output directory, for commands that change it."""
    out = tmp_path / "outputs"
    shutil.copytree(samples.out, out)
    return out


def ok(*args: str) -> str:
    result = meridian(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meridian: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def ids_of(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.strip().splitlines()]


# ------------------------------------------------------------------------------------- list


def test_list_prints_one_line_per_run_newest_first_starting_with_an_id_prefix(samples):
    out = str(samples.out)
    lines = ok("runs", "list", "--output-dir", out).strip().splitlines()
    runs = storage.load_all_runs(samples.out)
    assert [line.split()[0] for line in lines] == [r["run_id"][:8] for r in runs]
    real = next(line for line in lines if line.startswith(samples.real["fld15"][:8]))
    run = storage.load_run_by_id(samples.real["fld15"], samples.out)
    for name in ("total_return", "sharpe_ratio", "max_drawdown"):
        assert format_metric(name, run["metrics"][name]) in real
    assert "fld_offset=15" in real and "success" in real
    failed = next(line for line in lines if line.startswith(samples.real["failed"][:8]))
    assert "failed" in failed and "error: ValueError: need 1 <= fast < slow" in failed


def test_list_filters_sorts_and_limits(samples):
    out = str(samples.out)
    runs = storage.load_all_runs(samples.out)
    sma = ids_of(ok("runs", "list", "--strategy", "sma_cross", "--output-dir", out))
    assert sma == [r["run_id"][:8] for r in runs if r["strategy_name"] == "sma_cross"]
    failed = ids_of(ok("runs", "list", "--status", "failed", "--output-dir", out))
    assert failed == [r["run_id"][:8] for r in runs if r["status"] == "failed"]

    by_sharpe = ids_of(ok("runs", "list", "--sort", "sharpe_ratio", "--output-dir", out))
    expected = sorted(runs, key=lambda r: (r["metrics"].get("sharpe_ratio") is None,
                                           -(r["metrics"].get("sharpe_ratio") or 0)))
    assert by_sharpe[:5] == [r["run_id"][:8] for r in expected[:5]]
    assert len(by_sharpe) == len(runs)

    top = ok("runs", "list", "--sort", "win_rate", "--limit", "3", "--output-dir", out)
    assert len(top.strip().splitlines()) == 3
    assert "win_rate" in top  # the sort metric is shown when it is not a default column


@pytest.mark.parametrize(("args", "fragments"), [
    (["--sort", "sharpe"], ["cannot sort by 'sharpe'; valid:", "sharpe_ratio"]),
    (["--status", "done"], []),
    (["--limit", "0"], []),
], ids=["unknown-sort-metric", "bad-status", "bad-limit"])
def test_list_rejects_bad_options(samples, args, fragments):
    result = meridian("runs", "list", *args, "--output-dir", str(samples.out))
    if fragments:
        one_line_error(result, *fragments)
    else:  # click's own usage errors: exit 2, the option named
        assert result.returncode == 2 and args[0] in result.stderr


def test_list_of_an_empty_registry_says_so(outputs):
    result = meridian("runs", "list", "--output-dir", str(outputs))
    assert result.returncode == 0 and result.stdout == ""
    assert "no runs" in result.stderr


# ----------------------------------------------------------------------------------- search


def test_search_by_the_filter_words_of_the_runs_page(samples):
    out = str(samples.out)
    assert ids_of(ok("runs", "search", "fld_offset=12", "--output-dir", out)) \
        == [samples.api["fld12"][:8]]
    assert ids_of(ok("runs", "search", "fld_offset=1", "--output-dir", out)) == []  # exact
    runs = storage.load_all_runs(samples.out)
    fld = [r for r in runs if r["strategy_name"] == "fld"
           and (r["metrics"].get("sharpe_ratio") or -99) > 0.5]
    found = ids_of(ok("runs", "search", "sharpe_ratio>0.5", "FLD", "--limit", "500",
                      "--output-dir", out))
    assert sorted(found) == sorted(r["run_id"][:8] for r in fld)
    assert storage.search_runs(query="fld_offset=12 tag:nope", output_dir=out) == []


def test_search_by_parameter_metric_bounds_and_time(samples):
    out = str(samples.out)
    assert ids_of(ok("runs", "search", "--param", "fld_offset=12", "--output-dir", out)) \
        == [samples.api["fld12"][:8]]
    assert set(ids_of(ok("runs", "search", "--param", "fast=5", "--strategy", "sma_cross",
                         "--output-dir", out))) == {samples.api["sma5_20"][:8],
                                                   samples.api["sma5_30"][:8]}
    runs = storage.load_all_runs(samples.out)
    sharpe = sorted(r["metrics"]["sharpe_ratio"] for r in runs
                    if r["metrics"].get("sharpe_ratio") is not None)
    low, high = round(sharpe[len(sharpe) // 4], 4), round(sharpe[3 * len(sharpe) // 4], 4)
    drawdown = sorted(r["metrics"]["max_drawdown"] for r in runs
                      if r["metrics"].get("max_drawdown") is not None)
    deepest = round(drawdown[len(drawdown) // 2], 4)
    found = ids_of(ok("runs", "search", "--min", f"sharpe_ratio={low}", "--max",
                      f"sharpe_ratio={high}", "--min", f"max_drawdown={deepest}", "--sort",
                      "sharpe_ratio", "--output-dir", out))
    expected = [r for r in runs if r["metrics"].get("sharpe_ratio") is not None
                and low <= r["metrics"]["sharpe_ratio"] <= high
                and r["metrics"]["max_drawdown"] >= deepest]
    assert found == [r["run_id"][:8] for r in sorted(
        expected, key=lambda r: -r["metrics"]["sharpe_ratio"])] and found
    result = meridian("runs", "search", "--since", "2999-01-01", "--output-dir", out)
    assert result.returncode == 0 and result.stdout == "" and "no runs match" in result.stderr
    assert len(ids_of(ok("runs", "search", "--until", "2999-01-01", "--limit", "4",
                         "--output-dir", out))) == 4


@pytest.mark.parametrize(("args", "fragments"), [
    (["--min", "sharpe_ratio"], ["--min 'sharpe_ratio': use NAME=VALUE"]),
    (["--min", "sharpe_ratio=high"], ["--min expects METRIC=NUMBER", "'high' is not a"]),
    (["--max", "=1"], ["--max '=1': use NAME=VALUE"]),
    (["--min", "sharpe_ratio=nan"], ["not a finite number"]),
    (["--min", "sharpe=1"], ["unknown metric 'sharpe'", "sharpe_ratio"]),
    (["--param", "fld_offset"], ["--param 'fld_offset': use NAME=VALUE"]),
    (["--since", "yesterday"], ["timestamp 'yesterday' is not ISO 8601"]),
    (["--sort", "best"], ["cannot sort by 'best'"]),
], ids=["min-no-value", "min-not-a-number", "max-no-name", "min-nan", "unknown-metric",
        "param-no-value", "bad-since", "bad-sort"])
def test_search_rejects_bad_filters_with_one_line(samples, args, fragments):
    one_line_error(meridian("runs", "search", *args, "--output-dir", str(samples.out)),
                   *fragments)


# ------------------------------------------------------------------------------------- show


def test_show_by_prefix_prints_params_metrics_and_paths(samples):
    run = storage.load_run_by_id(samples.real["fld15"], samples.out)
    text = ok("runs", "show", run["run_id"][:6], "--output-dir", str(samples.out))
    assert text.startswith(f"run         {run['run_id']}\n")
    assert re.search(r"^  fld_offset\s+15$", text, re.M)
    assert re.search(rf"^  sharpe_ratio\s+{re.escape(format_metric('sharpe_ratio', run['metrics']['sharpe_ratio']))}$", text, re.M)  # noqa: E501
    assert run["report_path"] in text and run["notebook_path"] in text


def test_show_of_a_failed_run_gives_the_error_and_the_traceback_on_request(samples):
    out = str(samples.out)
    short = ok("runs", "show", samples.real["failed"], "--output-dir", out)
    assert "error       ValueError: need 1 <= fast < slow" in short
    assert "--traceback)" in short
    full = ok("runs", "show", samples.real["failed"], "--traceback", "--output-dir", out)
    assert len(full.splitlines()) > len(short.splitlines()) and "ValueError" in full


def test_show_json_is_the_registry_record(samples):
    record = json.loads(ok("runs", "show", samples.api["fld5"], "--json", "--output-dir",
                           str(samples.out)))
    assert record == storage.load_run_by_id(samples.api["fld5"], samples.out)


@pytest.mark.parametrize(("run_id", "fragments"), [
    ("0000ffff", ["no run '0000ffff' in"]),
    ("abcd", ["run id prefix 'abcd' is ambiguous", "abcd0001-", "abcd0002-"]),
    ("ab", ["no run 'ab'", "4+ characters"]),
], ids=["unknown", "ambiguous", "too-short"])
def test_show_of_an_unknown_or_ambiguous_id_is_one_line_exit_2(samples, run_id, fragments):
    one_line_error(meridian("runs", "show", run_id, "--output-dir", str(samples.out)),
                   *fragments)


# ---------------------------------------------------------------------------------- compare


def test_compare_prints_metrics_side_by_side_and_writes_a_page(samples, browser):
    first, second = samples.real["fld"], samples.real["fld15"]
    result = meridian("runs", "compare", first[:8], second[:8], "--output-dir", str(samples.out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == [first[:8], second[:8]]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["fld_offset"] == ["10", "15"]  # the parameter that differs, and only it
    assert "cot_threshold" not in rows
    for run_id, column in ((first, 0), (second, 1)):
        metrics = storage.load_run_by_id(run_id, samples.out)["metrics"]
        assert rows["sharpe_ratio"][column] == format_metric("sharpe_ratio",
                                                             metrics["sharpe_ratio"])
    page_path = Path(lines[-1].removeprefix("comparison: "))
    assert page_path == samples.out / "comparisons" / f"{first[:8]}_{second[:8]}.html"

    tab = browser.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.goto(page_path.as_uri())
    tab.wait_for_selector("#comparison-chart .scatterlayer .trace")
    assert tab.locator("#comparison-chart .scatterlayer .trace").count() == 2
    legend = tab.locator("#comparison-chart .legendtext").evaluate_all(
        "nodes => nodes.map(n => n.textContent)")
    assert legend == ["fld fld_offset=10", "fld fld_offset=15"]
    for run_id in (first, second):  # report links relative to comparisons/
        href = tab.locator(f"a[href$='{run_id}/report.html']").get_attribute("href")
        assert href == f"../runs/{run_id}/report.html"
        assert (page_path.parent / href).resolve().is_file()
    assert tab.locator("tr.differs td:first-child").all_inner_texts() == ["fld_offset"]
    best = tab.locator("td.best").evaluate_all(
        "cells => cells.map(c => c.parentElement.firstElementChild.textContent)")
    assert "Sharpe" in best and "Trades" not in best and "Buy & hold return" not in best
    tab.close()
    assert dialogs == []


def test_compare_escapes_hostile_strings_in_its_page(samples, browser):
    result = meridian("runs", "compare", samples.xss_param, samples.xss_error,
                      samples.api["fld5"], "--output-dir", str(samples.out))
    assert result.returncode == 0, result.stderr
    page_path = Path(result.stdout.strip().splitlines()[-1].removeprefix("comparison: "))
    html = page_path.read_text()
    assert "<script>window.__xss" not in html and "<img src=x" not in html
    tab = browser.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.goto(page_path.as_uri())
    tab.wait_for_selector("#comparison-chart .scatterlayer .trace")
    assert tab.locator("#comparison-chart .scatterlayer .trace").count() == 2  # failed: none
    assert "No equity curve" in tab.locator("body").inner_text()
    assert "onerror" in tab.locator("body").inner_text()  # shown as text
    assert tab.evaluate("window.__xss") is None and dialogs == []
    tab.close()


@pytest.mark.parametrize(("ids", "fragments"), [
    (lambda s: [s.real["fld"]], ["compare needs at least 2 run ids, got 1"]),
    (lambda s: [s.real["fld"], "0000ffff"], ["no run '0000ffff'"]),
    (lambda s: [s.real["fld"], "abcd"], ["ambiguous"]),
    (lambda s: [s.real["fld"], s.real["fld"][:6]], ["is named twice"]),
], ids=["one-run", "unknown", "ambiguous", "same-run-twice"])
def test_compare_rejects_bad_ids(samples, ids, fragments):
    one_line_error(meridian("runs", "compare", *ids(samples), "--output-dir", str(samples.out)),
                   *fragments)


# ----------------------------------------------------------------------------------- delete


def test_delete_asks_first_and_keeps_everything_on_no(scratch, samples):
    run_id = samples.real["fld"]
    result = meridian("runs", "delete", run_id[:8], "--output-dir", str(scratch), input="n\n")
    assert result.returncode == 1 and "nothing deleted" in result.stderr
    assert result.stdout.startswith(run_id[:8])  # what would go, then the question
    assert "Delete this run and its folder? [y/N]" in result.stdout
    assert storage.load_run_by_id(run_id, scratch)["run_id"] == run_id
    assert (scratch / "runs" / run_id).is_dir()


def test_delete_removes_rows_and_folders_backs_up_and_refreshes_the_dashboard(scratch, samples):
    doomed = [samples.real["fld"], samples.api["fld5"]]
    before = len(storage.load_all_runs(scratch))
    assert all(run_id in page_text(scratch) for run_id in doomed)
    result = meridian("runs", "delete", doomed[0][:8], doomed[1], "--output-dir", str(scratch),
                      input="y\n")
    assert result.returncode == 0, result.stderr
    assert "Delete these 2 runs and their folders?" in result.stdout
    assert "deleted 2 runs" in result.stdout
    remaining = {r["run_id"] for r in storage.load_all_runs(scratch)}
    assert len(remaining) == before - 2 and not remaining & set(doomed)
    assert not (scratch / "runs" / doomed[0]).exists()
    assert (scratch / "runs" / samples.real["fld15"]).is_dir()
    (backup,) = (scratch / "backups").glob("registry-*.sqlite")  # one backup for both
    with sqlite3.connect(backup) as connection:
        backed_up = {row[0] for row in connection.execute("SELECT run_id FROM runs")}
    assert backed_up == remaining | set(doomed)
    index = page_text(scratch)
    assert not any(run_id in index for run_id in doomed)
    assert samples.real["fld15"] in index


def test_delete_yes_skips_the_question_and_a_bad_id_deletes_nothing(scratch, samples):
    before = len(storage.load_all_runs(scratch))
    one_line_error(meridian("runs", "delete", samples.api["fld6"], "0000ffff", "--yes",
                            "--output-dir", str(scratch)), "no run '0000ffff'")
    one_line_error(meridian("runs", "delete", "abcd", "--yes", "--output-dir", str(scratch)),
                   "ambiguous")
    assert len(storage.load_all_runs(scratch)) == before
    result = meridian("runs", "delete", samples.api["fld6"], "-y", "--output-dir", str(scratch))
    assert result.returncode == 0 and "deleted 1 run;" in result.stdout
    assert len(storage.load_all_runs(scratch)) == before - 1


# ------------------------------------------------------------------------------------ stats


def test_stats_counts_runs_and_names_the_best(samples):
    text = ok("runs", "stats", "--output-dir", str(samples.out))
    stats = storage.get_registry_stats(samples.out)
    assert text.startswith(f"runs      {stats['total']}  (failed {stats['by_status']['failed']}, "
                           f"success {stats['by_status']['success']})")
    assert re.search(rf"^  fld\s+{stats['by_strategy']['fld']}$", text, re.M)
    best = stats["best"]["sharpe_ratio"]
    assert re.search(rf"^  sharpe_ratio\s+{re.escape(format_metric('sharpe_ratio', best['value']))}"
                     rf"\s+{best['run_id'][:8]}\s+{best['strategy_name']}$", text, re.M)


def test_stats_of_an_empty_registry(outputs):
    assert ok("runs", "stats", "--output-dir", str(outputs)).startswith("runs      0\n")


# -------------------------------------------------------------------------------- dashboard


def test_every_meridian_run_regenerated_the_dashboard_even_three_at_once(samples):
    """The samples' three notebook runs finished together; each rebuilt index.html, and the
    last rebuild saw every run (rebuilds take turns)."""
    html = page_text(samples.out)
    assert all(run_id in html for run_id in samples.ids)
    assert not list(samples.out.rglob("*.tmp"))  # no temp file left behind


def test_dashboard_command_writes_index_html(scratch, samples):
    (scratch / "index.html").unlink()
    result = meridian("dashboard", "--output-dir", str(scratch))
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == scratch / "index.html"
    html = page_text(scratch)
    assert all(run_id in html for run_id in samples.ids)
    assert re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["']?https?:""", html) == []


def test_dashboard_of_an_empty_output_dir(outputs, browser):
    result = meridian("dashboard", "--output-dir", str(outputs))
    assert result.returncode == 0, result.stderr
    assert not (outputs / "registry.sqlite").exists()  # reading never creates a registry
    tab = browser.new_page()
    tab.goto((outputs / "index.html").as_uri())
    tab.wait_for_selector("html[data-ready='1']")
    assert "No runs yet" in tab.locator("#empty").inner_text()
    tab.close()


def test_dashboard_open_uses_the_web_browser(scratch, tmp_path):
    opener = tmp_path / "opener.sh"
    log = tmp_path / "opened.txt"
    opener.write_text(f"#!/bin/sh\necho \"$1\" > {log}\n")
    opener.chmod(0o755)
    result = meridian("dashboard", "--open", "--output-dir", str(scratch),
                      env={"BROWSER": str(opener)})
    assert result.returncode == 0, result.stderr
    assert log.read_text().strip() == (scratch / "index.html").as_uri()


def test_import_keeps_the_good_records_and_names_the_bad_ones(tmp_path):
    good = {"run_id": "11111111-0000-4000-8000-000000000000", "strategy_name": "fld",
            "status": "success", "timestamp": "2024-01-01T00:00:00", "params": {"a": 1},
            "metrics": {"sharpe_ratio": 1.0}}
    bad = {**good, "run_id": "22222222-0000-4000-8000-000000000000", "params": "a=1"}
    other = {**good, "run_id": "33333333-0000-4000-8000-000000000000"}
    source = tmp_path / "runs.json"
    source.write_text(json.dumps([good, bad, other, 5]))
    out = tmp_path / "outputs"
    result = meridian("runs", "import", str(source), "--output-dir", str(out))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "meridian: skipped record 2 (run_id 22222222-0000-4000-8000-000000000000): run record's "
        "'params' must be a dict of name → value, got a str",
        "meridian: skipped record 4: a run record must be a dict, got int"]
    assert "imported 2 runs; 0 already present, 2 bad" in result.stdout
    assert sorted(r["run_id"][:8] for r in storage.load_all_runs(out)) == ["11111111",
                                                                            "33333333"]


def test_a_run_deleted_then_imported_again_survives_a_rebuild(tmp_path):
    out = str(tmp_path / "outputs")
    ids = [f"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000" for n in (1, 2, 3)]
    records = [{"run_id": run_id, "strategy_name": "fld", "status": "success",
                "timestamp": "2024-01-01T00:00:00", "params": {"fld_offset": n},
                "metrics": {"sharpe_ratio": 1.0}} for n, run_id in enumerate(ids)]
    source = tmp_path / "runs.json"
    source.write_text(json.dumps(records))
    assert meridian("runs", "import", str(source), "--output-dir", out).returncode == 0
    # deleted, then imported again: back; imported, then deleted: gone, after a rebuild too
    assert meridian("runs", "delete", ids[0], "-y", "--output-dir", out).returncode == 0
    assert meridian("runs", "import", str(source), "--output-dir", out).returncode == 0
    assert meridian("runs", "delete", ids[1], "-y", "--output-dir", out).returncode == 0
    before = sorted(r["run_id"] for r in storage.load_all_runs(out))
    assert before == [ids[0], ids[2]]
    assert meridian("runs", "rebuild", "--output-dir", out).returncode == 0
    assert sorted(r["run_id"] for r in storage.load_all_runs(out)) == before
