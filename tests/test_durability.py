"""Nothing recorded is ever lost: killed runs and sweeps, a damaged registry, rebuilds, resumes,
hostile file names — each with the real thing (subprocesses, signals, random bytes, Chromium)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, default_signals, meridian

from meridian.registry.sweeps import list_sweeps, load_sweep
from meridian.storage import load_all_runs, save_run
from meridian.sweep.run import run_sweep
from meridian.sweep.store import load_sweep_rows, read_results

# a fused sweep runs ~20,000 of these a second on 2 cores: big enough to be stopped midway
BIG_GRID = ["--grid", "fld_offset=1:250:1", "--grid", "cot_threshold=-1:1:0.0005"]


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "meridian.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=default_signals)


def _wait_for(predicate, seconds: float = 120.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _processes_with(marker: str) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------------------------ runs


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_run_stopped_by_a_signal_is_recorded_interrupted_and_cleans_up(outputs, how):
    process = _start("run", "fld", "--output-dir", str(outputs))
    _wait_for(lambda: any(outputs.glob("runs/*/kernel.log")))
    time.sleep(0.3)
    process.send_signal(getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == (143 if how == "SIGTERM" else 130), stderr
    assert "Traceback" not in stderr
    (run,) = load_all_runs(outputs)
    assert run["status"] == "interrupted" and how.replace("SIGINT", "Ctrl-C") in run["error"]
    assert run["params"]["fld_offset"] == 10  # the full parameter set it ran with
    assert list(Path(tempfile.gettempdir()).glob(f"meridian-kernel-{process.pid}-*")) == []
    assert not list(outputs.rglob("*.tmp"))


def test_a_run_killed_before_its_kernel_started_is_listed(outputs):
    """kill -9 at the earliest moment a record exists: it shows as interrupted, can be
    deleted, and `runs rebuild` restores it from its folder too."""
    process = _start("run", "sma_cross", "--output-dir", str(outputs))
    _wait_for(lambda: any(outputs.glob("runs/*/run.json")), 60)
    process.kill()
    process.wait()
    (run,) = load_all_runs(outputs)
    assert run["status"] == "interrupted" and f"pid {process.pid}" in run["error"]
    rebuilt = meridian("runs", "rebuild", "--output-dir", str(outputs))
    assert rebuilt.returncode == 0 and "restored 1 runs" in rebuilt.stdout
    assert [r["status"] for r in load_all_runs(outputs)] == ["interrupted"]


# ---------------------------------------------------------------------- damaged registry


@pytest.fixture
def damaged(tmp_path):
    """An output folder with two runs and a sweep, whose registry is then overwritten."""
    out = tmp_path / "outputs"
    from meridian.api import run_backtest

    for offset in (8, 12):
        save_run({**run_backtest("fld", {"fld_offset": offset}).to_dict(), "kind": "api"}, out)
    sweep = run_sweep("fld", ["fld_offset=5:9:1"], workers=1, output_dir=out, progress=False)
    before = {r["run_id"]: r for r in load_all_runs(out)}
    rows = load_sweep_rows(sweep.sweep_id, output_dir=out)
    registry = out / "registry.sqlite"
    return out, registry, before, sweep.sweep_id, rows


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_a_damaged_registry_is_one_line_everywhere_and_rebuild_recovers_everything(
        damaged, damage):
    out, registry, before, sweep_id, rows = damaged
    with sqlite3.connect(registry) as conn:  # fold the WAL in: the damage must reach the data
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "garbage":
        registry.write_bytes(np.random.default_rng(1).bytes(200_000))
    else:  # two overwritten pages in the middle of a valid file
        data = bytearray(registry.read_bytes())
        page = 4096
        for number in (1, 2):
            data[number * page:(number + 1) * page] = np.random.default_rng(number).bytes(page)
        registry.write_bytes(bytes(data))
    for args in (["runs", "list"], ["runs", "show", "abcd"], ["runs", "stats"],
                 ["run", "fld"], ["sweep", "fld", "--grid", "fld_offset=5,6"],
                 ["runs", "list", "--sweep", sweep_id[:8]]):
        result = meridian(*args, "--output-dir", str(out))
        if damage == "pages" and args[-1] == sweep_id[:8] and result.returncode == 0:
            continue  # the pages hit held runs: the sweep's own rows still read fine
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "meridian runs rebuild" in lines[0], (args, lines)
    assert len(list(out.glob("runs/*"))) == 2  # `run` stopped before starting a kernel

    rebuilt = meridian("runs", "rebuild", "--output-dir", str(out))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "restored 2 runs and 1 sweeps" in rebuilt.stdout
    assert list((out / "backups").glob("registry-damaged-*.sqlite"))  # kept, never deleted
    after = {r["run_id"]: r for r in load_all_runs(out)}
    assert after == before
    assert load_sweep_rows(sweep_id, output_dir=out) == rows


def test_rebuild_of_a_healthy_registry_keeps_every_sweep_row(damaged):
    out, _, before, sweep_id, rows = damaged
    sweep = load_sweep(sweep_id, out)
    assert meridian("runs", "rebuild", "--output-dir", str(out)).returncode == 0
    assert {r["run_id"]: r for r in load_all_runs(out)} == before
    assert load_sweep_rows(sweep_id, output_dir=out) == rows
    restored = load_sweep(sweep_id, out)
    assert {k: restored[k] for k in sweep} == sweep


# ------------------------------------------------------------------------------------ sweeps


def test_a_sweep_stopped_by_sigterm_keeps_its_work_and_leaves_no_worker(tmp_path):
    out = tmp_path / "outputs"
    marker = f"meridian-test-{os.getpid()}-{time.time_ns()}"
    process = _start("sweep", "fld", *BIG_GRID, "--workers", "2", "--output-dir", str(out),
                     env={"MERIDIAN_TEST_MARK": marker})
    _wait_for(lambda: any(out.glob("sweeps/*/results/part-*.parquet")))
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "--resume" in stderr
    time.sleep(0.5)
    assert _processes_with(marker) == []
    (sweep,) = list_sweeps(out)
    assert sweep["status"] == "interrupted"
    assert 0 < sweep["completed"] < sweep["combinations"]
    assert len(read_results(out, sweep["sweep_id"], ["sharpe_ratio"])) == sweep["completed"]


def test_sweep_workers_exit_when_their_parent_is_killed(tmp_path):
    out = tmp_path / "outputs"
    marker = f"meridian-test-{os.getpid()}-{time.time_ns()}"
    process = _start("sweep", "fld", *BIG_GRID, "--workers", "2", "--output-dir", str(out),
                     env={"MERIDIAN_TEST_MARK": marker})
    _wait_for(lambda: len(_processes_with(marker)) >= 3)  # the parent and two workers
    process.kill()
    process.wait()
    _wait_for(lambda: _processes_with(marker) == [], 10)
    (sweep,) = list_sweeps(out)  # opening the registry notices the dead owner
    assert sweep["status"] == "interrupted"


def test_a_killed_sweep_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    grid = ["fld_offset=1:150:1", "cot_threshold=-1:1:0.002"]  # ≈ 8 s on 2 cores (fused)
    whole = run_sweep("fld", grid, workers=2, output_dir=tmp_path / "whole", progress=False)
    out = tmp_path / "cut"
    args = [arg for g in grid for arg in ("--grid", g)]
    process = _start("sweep", "fld", *args, "--workers", "2", "--output-dir", str(out))
    _wait_for(lambda: any(out.glob("sweeps/*/results/part-*.parquet")))
    process.kill()
    process.wait()
    (cut,) = list_sweeps(out)
    assert cut["status"] == "interrupted" and cut["completed"] < cut["combinations"]
    resumed = meridian("sweep", "--resume", cut["sweep_id"][:8], "--workers", "2",
                       "--output-dir", str(out))
    assert resumed.returncode == 0, resumed.stderr
    (done,) = list_sweeps(out)
    assert done["status"] == "success" and done["completed"] == whole.combinations
    left = read_results(out, done["sweep_id"]).sort_values("idx").reset_index(drop=True)
    right = read_results(tmp_path / "whole", whole.sweep_id).sort_values("idx")
    pd.testing.assert_frame_equal(left, right.reset_index(drop=True))
    again = meridian("sweep", "--resume", cut["sweep_id"][:8], "--output-dir", str(out))
    assert again.returncode == 2 and "nothing to resume" in again.stderr


def test_sweep_status_when_combinations_fail(tmp_path):
    out = str(tmp_path / "outputs")
    every = meridian("sweep", "fld", "--grid", "fld_offset=5,6", "--grid",
                     "sizing=volatility_target", "--output-dir", out)
    assert every.returncode == 1 and "every combination failed" in every.stderr
    some = meridian("sweep", "fld", "--grid", "fld_offset=5,6", "--grid",
                    "sizing=fixed_fraction,volatility_target", "--output-dir", out)
    assert some.returncode == 0 and "partial" in some.stdout.splitlines()[0]
    assert "2 of 4 combinations failed, e.g. SettingError: sizing='volatility_target' needs " \
           "target_volatility" in some.stdout
    assert {s["status"] for s in list_sweeps(out)} == {"failed", "partial"}


def test_combinations_that_break_the_strategy_rules_are_left_out(tmp_path):
    out = str(tmp_path / "outputs")
    some = meridian("sweep", "sma_cross", "--grid", "fast=10,30", "--grid", "slow=20,40",
                    "--output-dir", out)
    assert some.returncode == 0 and "success" in some.stdout.splitlines()[0], some.stderr
    assert "1 of 4 combinations left out: they break a rule of sma_cross" in some.stdout
    assert "overfitting: 3 trials" in some.stdout
    (sweep,) = list_sweeps(out)
    assert sweep["status"] == "success"
    best = [(b["params"]["fast"], b["params"]["slow"]) for b in sweep["best"]]
    assert sweep["skipped"] == 1 and sweep["failed"] == 0
    assert sorted(best) == [(10, 20), (10, 40), (30, 40)]
    every = meridian("sweep", "sma_cross", "--grid", "fast=30,40", "--grid", "slow=20",
                     "--output-dir", out)
    assert every.returncode == 2
    assert re.fullmatch(  # e.g. whichever combination came back first
        r"meridian: error: every combination breaks a rule of sma_cross, e.g. fast=(30|40), "
        r"slow=20 breaks the rule fast < slow of sma_cross: the fast average must be shorter "
        r"than the slow one; choose a grid that satisfies it",
        every.stderr.strip().splitlines()[-1])


def test_a_huge_grid_is_refused_at_once(tmp_path):
    started = time.perf_counter()
    result = meridian("sweep", "fld", "--grid", "fld_offset=1:100000:1", "--grid",
                      "cot_threshold=-1:1:0.0001", "--output-dir", str(tmp_path / "o"))
    assert time.perf_counter() - started < 15
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "2,000,100,000 combinations" in result.stderr
    assert "--max-combinations 10,000,000" in result.stderr
    assert not (tmp_path / "o").exists()
    small = meridian("sweep", "fld", "--grid", "fld_offset=1:100:1", "--max-combinations", "50",
                     "--output-dir", str(tmp_path / "o"))
    assert small.returncode == 2 and "100 combinations" in small.stderr


def test_adding_a_metric_never_breaks_an_existing_sweep(tmp_path, monkeypatch):
    from meridian.sweep import store

    out = tmp_path / "outputs"
    sweep = run_sweep("fld", ["fld_offset=5:7:1"], workers=1, output_dir=out, progress=False)
    with sqlite3.connect(out / "registry.sqlite") as conn:  # no metric is a column anywhere
        columns = {row[1] for table in ("runs", "sweeps")
                   for row in conn.execute(f"PRAGMA table_info({table})")}
    assert not columns & {"sharpe_ratio", "cagr"}
    monkeypatch.setattr(store, "METRIC_NAMES", (*store.METRIC_NAMES, "ulcer_index"))
    rows = store.load_sweep_rows(sweep.sweep_id, output_dir=out)
    assert len(rows) == 3 and all(row["metrics"]["ulcer_index"] is None for row in rows)
    assert rows[0]["metrics"]["sharpe_ratio"] == sweep.best[0]["metrics"]["sharpe_ratio"]


def test_unreachable_dask_scheduler_is_one_line_within_seconds(tmp_path):
    started = time.perf_counter()
    result = meridian("sweep", "fld", "--grid", "fld_offset=5,6", "--executor", "dask",
                      "--scheduler", "tcp://127.0.0.1:9", "--output-dir", str(tmp_path / "o"))
    assert time.perf_counter() - started < 20
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach a Dask scheduler" in result.stderr


# ---------------------------------------------------------------------- inert reports, modes


def test_a_hostile_file_name_is_inert_in_the_report(tmp_path, browser):
    out = tmp_path / "outputs"
    hostile = tmp_path / "[c](javascript:alert(7)).csv"
    from meridian.data import load_sample

    load_sample()[["Open", "High", "Low", "Close", "Volume"]].to_csv(hostile, index_label="Date")
    ran = meridian("run", "fld", f"data_path={hostile}", "--output-dir", str(out))
    assert ran.returncode == 0, ran.stderr
    (report,) = out.glob("runs/*/report.html")
    text = report.read_text()
    assert 'href="javascript:' not in text and "Content-Security-Policy" in text
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(report.as_uri())
    page.wait_for_selector(".main-svg", timeout=20_000)
    assert page.locator("a[href^='javascript:']").count() == 0
    assert "[c](javascript:alert(7)).csv" in page.inner_text("body")  # shown as text
    page.close()
    assert dialogs == []


def test_every_written_file_has_the_same_mode(tmp_path):
    out = tmp_path / "outputs"
    assert meridian("run", "sma_cross", "--output-dir", str(out)).returncode == 0
    (run,) = load_all_runs(out)
    assert meridian("runs", "delete", run["run_id"], "-y", "--output-dir", str(out)).returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode)
             for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert modes and set(modes.values()) == {0o666 & ~mask}, modes


def test_an_interrupt_while_summarizing_leaves_a_finished_resumable_sweep(tmp_path,
                                                                         monkeypatch):
    """Every row is saved before the statistics and the report are made: a Ctrl-C (a real
    SIGINT to this process) landing there marks the sweep interrupted with all its rows, and
    ``--resume`` computes nothing again, only the summary."""
    import meridian.sweep.run as sweep_run

    summarize = sweep_run._overfitting

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return summarize(*args, **kwargs)

    monkeypatch.setattr(sweep_run, "_overfitting", interrupted)
    out = tmp_path / "outputs"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep("fld", ["fld_offset=5:12:1"], workers=1, output_dir=out, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    (cut,) = list_sweeps(out)
    assert cut["status"] == "interrupted" and cut["completed"] == cut["combinations"] == 8
    resumed = meridian("sweep", "--resume", cut["sweep_id"][:8], "--output-dir", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "overfitting: 8 trials" in resumed.stdout
    (done,) = list_sweeps(out)
    assert done["status"] == "success" and done["completed"] == 8
