"""Walk-forward sweeps: windows, no test bar reaching a choice, stitched runs, executors agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import meridian

from meridian.api import run_backtest
from meridian.data import load_sample
from meridian.exceptions import ParameterError
from meridian.registry.sweeps import load_sweep
from meridian.storage import load_run_by_id
from meridian.sweep.run import run_sweep
from meridian.sweep.walkforward import folds

GRID = ["fld_offset=5:20:1", "cot_threshold=-0.5,0,0.5"]
INDEX = load_sample().index


def test_windows_in_bars_and_calendar_spans():
    rolling = folds("500:250", INDEX)
    assert [f.train for f in rolling[:2]] == [(0, 500), (250, 750)]
    assert [f.test for f in rolling[:2]] == [(500, 750), (750, 1000)]
    assert rolling[-1].test[1] == len(INDEX)  # the last test part ends with the data
    anchored = folds("500:250", INDEX, anchored=True)
    assert all(f.train[0] == 0 for f in anchored) and len(anchored) == len(rolling)
    yearly = folds("3y:1y", INDEX)
    first = yearly[0].dates()
    assert (first["train_start"], first["test_start"]) == ("2012-01-02", "2015-01-02")
    assert len(yearly) == 10
    stepped = folds("2y:6m:1y", INDEX)  # STEP > TEST: half of each year is not traded
    assert all(g.test[0] > f.test[1] for f, g in zip(stepped, stepped[1:], strict=False))
    assert all(f.train[1] == f.test[0] for f in stepped) and len(stepped) == 11
    assert [f.test for f in yearly[:3]] == [(yearly[0].test[0], yearly[1].test[0]),
                                            (yearly[1].test[0], yearly[2].test[0]), yearly[2].test]


def test_a_short_trailing_test_window_is_dropped_a_long_one_kept():
    tail = folds("750:250", INDEX[:750 + 250 + 17])
    assert [f.test for f in tail] == [(750, 1000)]  # the 17-bar remainder says nothing
    assert [f.test for f in folds("750:250", INDEX[:750 + 250 + 35], warm_up=40)] == [(750, 1000)]
    kept = folds("750:250", INDEX[:750 + 250 + 140])
    assert [f.test for f in kept] == [(750, 1000), (1000, 1140)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("3y", "use TRAIN:TEST"), ("3x:1y", "is not a duration"),
     ("20y:1y", "shorter than one training part plus a test part"),
     ("15:30", "no more than the indicator warm-up of 20 bars"),
     ("500:10", "test window 1 has 10 bars, fewer than the indicator warm-up of 20 bars"),
     ("3y:1y:6m", "STEP 6m is shorter than TEST 1y, so test windows 1 and 2 overlap")],
)
def test_bad_windows_are_one_line_errors(spec, message):
    with pytest.raises(ParameterError, match=message):
        folds(spec, INDEX, warm_up=20)


def test_cli_refuses_bad_combinations_of_options(tmp_path):
    out = str(tmp_path / "o")
    both = meridian("sweep", "fld", "--grid", "fld_offset=5,6", "--split", "2020-01-01",
                    "--walk-forward", "3y:1y", "--output-dir", out)
    assert both.returncode == 2 and "use one of them" in both.stderr
    lone = meridian("sweep", "fld", "--grid", "fld_offset=5,6", "--anchored", "--output-dir", out)
    assert lone.returncode == 2 and "--anchored goes with --walk-forward" in lone.stderr
    short = meridian("sweep", "fld", "--grid", "fld_offset=5:40:5", "--walk-forward", "500:30",
                     "--output-dir", out)
    assert short.returncode == 2 and "indicator warm-up of 40 bars" in short.stderr
    single = meridian("sweep", "fld", "--grid", "fld_offset=12", "--output-dir", out)
    assert single.returncode == 0 and "PBO) undefined (one combination)" in single.stdout


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf") / "outputs"
    return out, run_sweep("fld", GRID, walk_forward="3y:1y", workers=2, output_dir=out,
                          progress=False)


def test_a_walk_forward_records_its_windows_and_a_stitched_run(local):
    out, result = local
    walk = result.walk_forward
    assert len(walk["windows"]) == 10
    run = load_run_by_id(walk["run_id"], out)
    assert run["kind"] == "walk_forward" and run["params"]["windows"] == 10
    assert run["report_path"] and pd.Timestamp(run["equity"]["index"][0]) == pd.Timestamp(
        walk["windows"][0]["test_start"])
    assert run["metrics"] == pytest.approx(walk["metrics"], nan_ok=True)
    header = load_sweep(result.sweep_id, out)
    assert header["walk_forward"] == "3y:1y" and len(header["walk_forward_result"]["windows"]) == 10
    for name in ("fld_offset", "cot_threshold"):
        assert len(walk["stability"][name]["chosen"]) == 10
    html = result.report_path.read_text()
    assert "Walk-forward 3y:1y" in html and "Stitched out-of-sample equity" in html
    assert "How much of it is luck" in html
    # against the in-sample best: the sweep's best combination, traded over the same span
    best = result.best[0]["params"]
    assert walk["best_params"] == {name: best[name] for name in ("fld_offset", "cot_threshold")}
    span = pd.DatetimeIndex(run["equity"]["index"])
    hindsight = run_backtest("fld", best, start=str(span[0].date()), end=str(span[-1].date()))
    assert walk["best_equity"]["values"][-1] == pytest.approx(hindsight.equity.iloc[-1])
    assert html.count("in-sample best (fld_offset=") >= 1 and "walk-forward (stitched" in html


def test_the_same_walk_forward_on_a_dask_cluster(local, tmp_path):
    _, result = local
    dask = run_sweep("fld", GRID, walk_forward="3y:1y", workers=2, executor="dask",
                     output_dir=tmp_path / "outputs", progress=False)
    assert [w["params"] for w in dask.walk_forward["windows"]] == [
        w["params"] for w in result.walk_forward["windows"]]
    assert dask.walk_forward["equity"] == result.walk_forward["equity"]
    assert dask.walk_forward["metrics"] == result.walk_forward["metrics"]


def test_no_bar_of_a_test_window_reaches_its_choice(local, tmp_path):
    """Perturb every bar from window 5's test part on: windows 1–5 choose the same."""
    _, result = local
    window = result.walk_forward["windows"][4]
    data = load_sample()
    start = data.index.searchsorted(pd.Timestamp(window["test_start"]))
    rng = np.random.default_rng(0)
    noise = np.exp(np.cumsum(rng.normal(0, 0.02, len(data) - start)))
    changed = data.copy()
    for column in ("Open", "High", "Low", "Close"):
        changed.iloc[start:, changed.columns.get_loc(column)] *= noise
    path = tmp_path / "perturbed.csv"
    changed[["Open", "High", "Low", "Close", "Volume"]].to_csv(path, index_label="Date")
    original = tmp_path / "original.csv"
    data[["Open", "High", "Low", "Close", "Volume"]].to_csv(original, index_label="Date")
    before = run_sweep("fld", GRID, walk_forward="3y:1y", workers=1, data_path=str(original),
                       output_dir=tmp_path / "a", progress=False).walk_forward["windows"]
    after = run_sweep("fld", GRID, walk_forward="3y:1y", workers=1, data_path=str(path),
                      output_dir=tmp_path / "b", progress=False).walk_forward["windows"]
    assert [w["params"] for w in after[:5]] == [w["params"] for w in before[:5]]
    assert [w["in_sample"] for w in after[:5]] == [w["in_sample"] for w in before[:5]]
    assert after[4]["out_of_sample"] != before[4]["out_of_sample"]  # its test part did change
