"""In-process evaluation on one core: what a sweep worker does with its tasks, kernels loaded.

1. SMA cross on backtesting.py's GOOG sample, the speed issue's 4,800-combination grid: the
   sweep's own tasks through ``executors._evaluate`` (signals over bars × combinations, the
   parameter rules, the fused pass with every metric) in this process, best of five, bar ×
   combinations a second (target ≥ 1.5×10⁸); ``bench_orders`` times vectorbt's warm
   ``Portfolio.from_signals`` on the same grid.
2. FLD with its COT filter on the 13-year sample, 250 offsets × 41 thresholds: the same
   (target ≥ 1×10⁸).
3. The fused pass alone on the SMA targets against the reference path it replaces
   (``backtest_batch`` + ``compute_metrics_batch``) on the same columns.

``python -m benchmarks evaluate``.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from benchmarks.bench_sweep import _goog_csv

SMA_GRID = ["fast=5:64:1", "slow=70:228:2"]
FLD_GRID = ["fld_offset=1:250:1", "cot_threshold=-1:1:0.05"]


def _best(function, repeats: int = 5) -> float:
    function()  # loads the kernels, fills the caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _plan(strategy: str, grid: list[str], data_path: str | None):
    from meridian.sweep import run

    return run._new_plan(strategy, grid, metric="sharpe_ratio", top=10, executor="local",
                         workers=1, scheduler=None, data_path=data_path, split=None,
                         settings=None, options={}, max_combinations=10**8, walk_forward=None,
                         anchored=False, universe=None)


def _evaluation(strategy: str, grid: list[str], data_path: str | None) -> tuple[float, int]:
    """Seconds for every task of the sweep on one core, and its bar × combinations."""
    from meridian.indicators import shared_windows
    from meridian.sweep import executors

    plan = _plan(strategy, grid, data_path)
    data = plan.data.copy()
    data.attrs.clear()  # as a worker holds it
    shared_windows(data)
    windows = plan.evaluated_windows()
    size = executors.chunk_size(plan.grid.size, 2, len(data), fused=True)
    indices = np.arange(plan.grid.size)

    def every_task() -> None:
        for task in executors.tasks(indices, size):
            executors._evaluate(data, plan.job, plan.grid, windows, task)

    return _best(every_task), plan.grid.size * len(data)


def _fused_against_reference(data_path: str) -> tuple[float, float, int]:
    """Seconds of the fused pass and of backtest_batch + compute_metrics_batch on the same
    1,000 SMA columns, and their bar × combinations."""
    import pandas as pd

    from meridian.engine import _fused, backtest_batch, compute_metrics_batch
    from meridian.settings import RunSettings
    from meridian.strategies import sma_cross

    frame = pd.read_csv(data_path, index_col=0, parse_dates=True)
    fast = np.repeat(np.arange(5, 65), 80)[::5][:1000]
    slow = np.tile(np.arange(70, 230, 2), 60)[::5][:1000]
    targets = np.asfortranarray(sma_cross.signals_batch(frame, fast=fast, slow=slow),
                                dtype=float)
    settings = RunSettings()
    open_, close = frame["Open"].to_numpy(float), frame["Close"].to_numpy(float)
    fused = _best(lambda: _fused.metrics(open_, close, frame.index, targets, settings))
    reference = _best(lambda: compute_metrics_batch(backtest_batch(frame, targets, settings)),
                      repeats=2)
    return fused, reference, targets.size


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("MERIDIAN_HOME", scratch)
        goog = _goog_csv()
        seconds, cells = _evaluation("sma_cross", SMA_GRID, goog)
        print("in-process evaluation, one core, kernels loaded (every task of the sweep):")
        print(f"  SMA cross on GOOG, 4,800 combinations: {seconds:.3f} s = "
              f"{cells / seconds:.2e} bar x combinations/s (target >= 1.5e8)")
        seconds, cells = _evaluation("fld", FLD_GRID, None)
        print(f"  FLD with COT filter, 13 years, 10,250 combinations: {seconds:.3f} s = "
              f"{cells / seconds:.2e} bar x combinations/s (target >= 1e8)")
        fused, reference, cells = _fused_against_reference(goog)
        print(f"fused pass alone, 1,000 SMA columns: {cells / fused:.2e} bar x combinations/s; "
              f"backtest_batch + compute_metrics_batch {cells / reference:.2e}; "
              f"{reference / fused:.0f}x")
