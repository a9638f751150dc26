"""Sweeps: grids, exactness against run_backtest, Dask = local, split, reports, Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, default_signals, meridian

from meridian.api import run_backtest
from meridian.data import load_sample
from meridian.exceptions import ParameterError
from meridian.registry.sweeps import list_sweeps, load_sweep
from meridian.strategies.fld import PARAMS as FLD
from meridian.sweep.executors import LOCAL_CLUSTER_CONFIG, chunk_size, connect_dask
from meridian.sweep.grid import build_grid, parse_spec
from meridian.sweep.run import _work, run_sweep
from meridian.sweep.store import load_sweep_rows


def _same(a, b) -> bool:
    """The same float, or both undefined: a fused sweep's sums are numpy's own."""
    if (a is None or math.isnan(a)) and (b is None or math.isnan(b)):
        return True
    return a == b


def test_grid_columns_are_its_combinations_one_array_per_parameter():
    grid = build_grid(FLD, ["fld_offset=5:9:2", "cot_threshold=-0.5,0.5"], "fld")
    indices = np.array([5, 0, 3])
    columns = grid.columns(indices)
    combinations = grid.combinations(indices)
    assert set(columns) == set(combinations[0])
    for number, combination in enumerate(combinations):
        assert {name: column[number].item() for name, column in columns.items()} == combination


def test_specs_ranges_lists_and_types():
    assert parse_spec("fld_offset", "5:10:2", 10, "fld") == [5, 7, 9]
    assert parse_spec("fld_offset", "5:9:2", 10, "fld") == [5, 7, 9]  # stop included
    assert parse_spec("cot_threshold", "0:0.3:0.1", 0.0, "fld") == [0.0, 0.1, 0.2, 0.3]
    assert parse_spec("cot_threshold", "-0.5,0,0.5", 0.0, "fld") == [-0.5, 0.0, 0.5]
    assert parse_spec("allow_short", "True,False", True, "fld") == [True, False]
    grid = build_grid(FLD, ["fld_offset=5:6:1", "allow_short=True,False"], "fld")
    assert grid.size == 4 and grid[0] == {"fld_offset": 5, "cot_threshold": 0.0,
                                          "allow_short": True, "fld_stop": False}
    assert grid[3] == {"fld_offset": 6, "cot_threshold": 0.0, "allow_short": False,
                       "fld_stop": False}


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["offset=1:3:1"], "unknown parameter 'offset' for fld; valid parameters: fld_offset"),
        (["fld_offset=a,b"], "'fld_offset' of fld expects int"),
        (["fld_offset=1.5:3:1"], "'fld_offset' of fld expects int"),
        (["fld_offset=5:1:1"], "needs step > 0 and stop >= start"),
        (["fld_offset=1:5"], "a range is start:stop:step"),
        (["fld_offset"], "--grid .fld_offset.: use NAME=VALUE, e.g. fld_offset=5:40:1"),
        (["fld_offset=1,2", "fld_offset=3"], "--grid fld_offset is given twice"),
    ],
)
def test_bad_grids_fail_before_any_work(grid, message):
    with pytest.raises(ParameterError, match=message):
        build_grid(FLD, grid, "fld")


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "outputs"
    result = run_sweep("fld", ["fld_offset=5:16:1", "cot_threshold=-0.5,0,0.5"], workers=2,
                       output_dir=out, progress=False, commission=0.0005, top=3,
                       split="2021-01-01")
    return out, result


def test_every_row_equals_a_single_run_backtest(local_sweep):
    _, result = local_sweep
    assert len(result.table) == 36 and result.status == "success"
    sample = result.table.sample(6, random_state=0)
    for _, row in sample.iterrows():
        params = {"fld_offset": int(row["fld_offset"]), "cot_threshold": row["cot_threshold"]}
        single = run_backtest("fld", params, commission=0.0005, end="2020-12-31")
        assert all(_same(row[name], value) for name, value in single.metrics.items()), params


def test_split_reports_out_of_sample_metrics_of_the_top(local_sweep):
    _, result = local_sweep
    assert len(result.best) == 3
    sharpe = result.table["sharpe_ratio"]
    assert result.best[0]["metrics"]["sharpe_ratio"] == sharpe.max()
    for entry in result.best:
        after = run_backtest("fld", entry["params"], commission=0.0005, start="2021-01-01")
        assert all(_same(entry["oos_metrics"][k], v) for k, v in after.metrics.items())


def test_the_sweep_is_recorded_with_one_row_per_combination(local_sweep):
    out, result = local_sweep
    (sweep,) = list_sweeps(out)
    assert sweep["sweep_id"] == result.sweep_id and sweep["completed"] == 36
    assert sweep["grid"] == {"fld_offset": list(range(5, 17)), "cot_threshold": [-0.5, 0.0, 0.5]}
    assert sweep["metric"] == "sharpe_ratio" and sweep["duration"] > 0
    rows = load_sweep_rows(result.sweep_id[:8], output_dir=out)
    assert len(rows) == 36
    values = [r["metrics"]["sharpe_ratio"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert all(row["oos_metrics"] is not None for row in rows)  # every one, out of sample too
    assert "equity" not in rows[0]  # no curves per combination
    assert result.report_path.is_file() and "mr-chart-data" in result.report_path.read_text()


def test_the_split_report_draws_every_combination_in_and_out_of_sample(local_sweep, browser):
    """The scatter is SVG: WebGL (scattergl) needs eval, which the page's policy forbids."""
    from conftest import watched_page

    _, result = local_sweep
    with watched_page(browser, viewport={"width": 1400, "height": 900}) as page:
        page.goto(result.report_path.as_uri())
        page.wait_for_selector(".js-plotly-plot .scatterlayer")
        points = page.locator(".js-plotly-plot .scatterlayer .trace:first-child path.point")
        assert points.count() == 36


def test_dask_local_cluster_gives_the_same_results_as_local(local_sweep, tmp_path):
    _, local = local_sweep
    dask = run_sweep("fld", ["fld_offset=5:16:1", "cot_threshold=-0.5,0,0.5"], workers=2,
                     executor="dask", output_dir=tmp_path / "outputs", progress=False,
                     commission=0.0005, top=3, split="2021-01-01")
    assert load_sweep(dask.sweep_id, tmp_path / "outputs")["executor"] == "dask"
    pd.testing.assert_frame_equal(dask.table, local.table)


def test_a_local_dask_cluster_forks_its_workers_without_the_profiler():
    """Its workers hold the settings in their own processes (each profile sample and tick
    would take a worker's GIL from its task)."""
    import dask

    client, cluster = connect_dask(1, None)
    try:
        seen = client.run(lambda: (os.getpid(), *(dask.config.get(name)
                                                  for name in LOCAL_CLUSTER_CONFIG)))
        ((pid, *values),) = seen.values()
        assert pid != os.getpid()
        assert values == ["fork", False, "1s"]  # multiprocessing method, profiler, tick
    finally:
        client.close()
        cluster.close()


def test_top_reports_rerun_notebooks_with_the_same_metrics(tmp_path):
    result = run_sweep("sma_cross", ["fast=5,10", "slow=30,60"], workers=1, top=2, reports=True,
                       output_dir=tmp_path / "outputs", progress=False)
    assert [entry["matches_notebook"] for entry in result.best] == [True, True]
    assert all(os.path.exists(entry["report_path"]) for entry in result.best)
    html = result.report_path.read_text()
    assert html.count('">report</a>') == 2


def test_failing_combinations_are_recorded_not_fatal(tmp_path):
    result = run_sweep("fld", ["fld_offset=5,6", "sizing=fixed_fraction,volatility_target"],
                       workers=1, output_dir=tmp_path / "outputs", progress=False)
    failed = result.table[result.table["error"].notna()]
    assert len(failed) == 2 and result.failed == 2 and result.status == "partial"
    assert failed["error"].iloc[0].startswith("SettingError: sizing='volatility_target' needs")
    assert failed["sharpe_ratio"].isna().all()


def test_cli_prints_progress_best_and_report(tmp_path):
    result = meridian("sweep", "fld", "--grid", "fld_offset=5:8:1", "--grid",
                      "cot_threshold=0,0.5", "--top", "3", "--workers", "2",
                      "--output-dir", str(tmp_path / "outputs"))
    assert result.returncode == 0, result.stderr
    assert "combo" in result.stderr  # tqdm progress on stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sweep ") and "8 combinations" in lines[0]
    assert lines[1] == "best by sharpe_ratio:" and len(lines[2:5]) == 3
    assert lines[6].startswith("overfitting: 8 trials · deflated Sharpe ratio (DSR) ")
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "offset=1,2"], "unknown parameter 'offset' for fld"),
        (["--grid", "fld_offset=x"], "'fld_offset' of fld expects int"),
        (["--grid", "fld_offset=5", "--metric", "sharp"], "--metric 'sharp' is not a metric"),
        (["--grid", "fld_offset=5", "--split", "2040-01-01"], "needs bars on both sides"),
        (["--grid", "fld_offset=5", "--data", "missing.csv"], "missing.csv"),
    ],
)
def test_cli_bad_input(args, message, tmp_path):
    result = meridian("sweep", "fld", *args, "--output-dir", str(tmp_path / "outputs"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "outputs" / "sweeps").exists()



def test_cli_refuses_the_data_the_api_refuses(tmp_path):
    frame = load_sample(with_cot=False)
    short, mixed = tmp_path / "short.csv", tmp_path / "mixed.csv"
    frame.iloc[:5].to_csv(short)
    hours = frame.iloc[:40].set_axis(pd.date_range("2025-01-06 09:00", periods=40, freq="h"))
    pd.concat([frame.iloc[-60:], hours]).rename_axis("Date").to_csv(mixed)
    for path, message in ((short, "short.csv has 5 bars; a backtest needs at least 20"),
                          (mixed, "the bars change from daily to 1-hour here")):
        result = meridian("sweep", "fld", "--grid", "fld_offset=5,10", "--data", str(path),
                          "--output-dir", str(tmp_path / "outputs"))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "outputs" / "sweeps").exists()


def test_ctrl_c_stops_cleanly_and_keeps_finished_work(tmp_path):
    out = tmp_path / "outputs"
    process = subprocess.Popen(
        [sys.executable, "-m", "meridian.cli", "sweep", "fld", "--grid", "fld_offset=1:250:1",
         "--grid", "cot_threshold=-1:1:0.0005", "--workers", "2", "--output-dir", str(out)],
        # 1 M combinations: tens of seconds even fused, so the signal lands midway
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signals,
    )
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline and "combo/s" not in line:
        line = process.stderr.read(200)  # tqdm is running once it reports a rate
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted" in stdout.splitlines()[0]
    (sweep,) = list_sweeps(out)
    assert sweep["status"] == "interrupted" and 0 < sweep["completed"] < sweep["combinations"]
    assert len(load_sweep_rows(sweep["sweep_id"], output_dir=out)) == sweep["completed"]
    assert np.isfinite([r["metrics"]["sharpe_ratio"] for r in
                        load_sweep_rows(sweep["sweep_id"], limit=5, output_dir=out)]).all()


def test_runs_list_sweep_shows_the_combinations_best_first(local_sweep):
    out, result = local_sweep
    listed = meridian("runs", "list", "--sweep", result.sweep_id[:8], "--limit", "5",
                      "--output-dir", str(out))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"sweep {result.sweep_id}") and len(lines) == 6
    best = result.best[0]["params"]
    assert f"fld_offset={best['fld_offset']}, cot_threshold={best['cot_threshold']}" in lines[1]
    unknown = meridian("runs", "list", "--sweep", "zzzzzzzz", "--output-dir", str(out))
    assert unknown.returncode == 2 and "no sweep 'zzzzzzzz'" in unknown.stderr


def test_workers_are_capped_by_the_combinations_and_the_cores(tmp_path):
    from meridian.sweep.executors import default_workers

    out = tmp_path / "outputs"
    result = run_sweep("fld", ["fld_offset=5,6"], workers=500, output_dir=out, progress=False)
    assert result.status == "success" and len(result.table) == 2
    (sweep,) = list_sweeps(out)
    assert sweep["workers"] == min(2, default_workers())
    for bad in (0, -3, 2.5, "4"):
        with pytest.raises(ParameterError, match="a whole number of processes"):
            run_sweep("fld", ["fld_offset=5,6"], workers=bad, output_dir=out, progress=False)


def test_the_first_compile_of_the_sweep_kernels_is_said_once(tmp_path):
    """A fresh numba cache: the first sweep says it compiles (seconds, once); the next loads."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    args = ("sweep", "sma_cross", "--grid", "fast=5,8", "--grid", "slow=20,30", "--workers", "1",
            "--output-dir", str(tmp_path / "outputs"))
    first = meridian(*args, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "compiling the sweep kernels" in first.stderr
    assert str(tmp_path / "numba") in first.stderr
    again = meridian(*args, env=env, timeout=600)
    assert again.returncode == 0 and "compiling" not in again.stderr, again.stderr


def test_dask_tasks_hold_four_local_fused_tasks_and_both_stay_bounded():
    """A Dask task costs its scheduler and workers more than a pool task: fewer, bigger ones."""
    local = chunk_size(100_250, 2, 3_392, fused=True)
    assert local == 4_000_000 // 3_392
    assert chunk_size(100_250, 2, 3_392, fused=True, dask=True) == 4 * local
    assert chunk_size(10**7, 2, 100, fused=True) == 20_000  # short data: capped all the same
    assert chunk_size(10**7, 2, 100, fused=True, dask=True) == 80_000
    assert chunk_size(4_800, 2, 2_148, fused=True, dask=True) == 4_800 // 8  # 4 tasks a worker
    assert chunk_size(5_000, 2, 3_000, dask=True) == chunk_size(5_000, 2, 3_000)


@pytest.mark.parametrize("total, size, largest, workers", [
    (100_250, 1_179, 4_716, 2), (1_000_250, 1_179, 4_716, 2), (10, 3, 12, 2), (7, 4, 4, 1),
    (50_000, 100, 2_000, 8)])
def test_work_covers_every_missing_combination_once_ending_with_small_tasks(
        total, size, largest, workers):
    """Big tasks first, shrinking to ``size``, so the workers finish together; every
    combination not done is in exactly one task, in index order, and none done is."""
    done = np.random.default_rng(total).random(total) < 0.1
    tasks = list(_work(done, size, largest, workers))
    assert np.array_equal(np.concatenate(tasks), np.flatnonzero(~done))
    assert all(len(task) for task in tasks)
    spans = [len(task) for task in _work(np.zeros(total, dtype=bool), size, largest, workers)]
    assert max(spans) <= largest and sum(spans) == total
    assert all(a >= b for a, b in zip(spans[:-2], spans[1:-1], strict=True))  # last: any
    if total > 4 * workers * largest:
        assert spans[0] == largest and spans[-2] == size  # tasks end as small as the pool's
    assert [len(t) for t in _work(done, size)] == [len(t) for t in _work(done, size, size, 9)]
