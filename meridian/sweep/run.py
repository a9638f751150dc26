"""``meridian sweep``: a parameter grid over a strategy module, in-process and in parallel.

No kernel and no notebook per combination: the data is loaded once, each combination calls
the extracted module's ``signals``, and batches go through the vectorized engine. Only the
best few combinations are turned into full notebook reports (``--reports``).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meridian import project
from meridian.data import load_market_data, load_ohlcv
from meridian.engine import METRIC_NAMES
from meridian.exceptions import ParameterError
from meridian.strategies import find_strategy, get_strategy
from meridian.sweep import executors
from meridian.sweep.evaluate import Settings, Window, evaluate
from meridian.sweep.grid import build_grid
from meridian.sweep.store import LOWER_IS_BETTER, save_sweep

METRIC_INDEX = {name: i for i, name in enumerate(METRIC_NAMES)}


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: every combination's metrics, ranked."""

    sweep_id: str
    strategy: str
    metric: str
    status: str
    axes: dict[str, list]
    table: pd.DataFrame  # one row per finished combination: params, then metrics, best first
    best: list[dict] = field(default_factory=list)  # top K: params, metrics, oos, run ids
    duration: float = 0.0
    report_path: Path | None = None


def _split_windows(data: pd.DataFrame, split: str | None) -> tuple[Window, Window | None]:
    if not split:
        return Window(), None
    try:
        cut = pd.Timestamp(split)
    except (ValueError, TypeError):
        raise ParameterError(f"--split {split!r} is not a date; use YYYY-MM-DD") from None
    if data.index.tz is not None and cut.tz is None:
        cut = cut.tz_localize(data.index.tz)
    before, after = (data.index < cut).sum(), (data.index >= cut).sum()
    if before < 2 or after < 2:
        raise ParameterError(
            f"--split {split}: the data ({data.index[0]:%Y-%m-%d} to {data.index[-1]:%Y-%m-%d}) "
            "needs bars on both sides of the split date"
        )
    last_in_sample = data.index[data.index < cut][-1]
    return Window(end=str(last_in_sample)), Window(start=str(cut))


def rank(values: np.ndarray, metric: str) -> np.ndarray:
    """Indices best first; NaN (undefined or failed) last."""
    key = values if metric in LOWER_IS_BETTER else -values
    return np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")


def run_sweep(
    strategy: str,
    grid: list[str] | tuple[str, ...],
    *,
    metric: str = "sharpe_ratio",
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    data_path: str | None = None,
    top: int = 10,
    reports: bool = False,
    split: str | None = None,
    initial_capital: float = 100_000.0,
    commission: float = 0.0,
    slippage: float = 0.0,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (``NAME=SPEC`` strings) and record the sweep.

    Everything is validated before any work starts. Ctrl-C stops cleanly: finished
    combinations are kept and the sweep is saved with status ``interrupted``.
    """
    strategy = find_strategy(strategy).name
    module = get_strategy(strategy)
    axes, combinations = build_grid(module.PARAMS, grid, strategy)
    if metric not in METRIC_INDEX:
        raise ParameterError(f"--metric {metric!r} is not a metric; use one of "
                             f"{', '.join(METRIC_NAMES)}")
    if top < 1:
        raise ParameterError(f"--top must be at least 1, got {top}")
    if executor not in executors.EXECUTORS:
        raise ParameterError(f"--executor {executor!r}: use one of "
                             f"{', '.join(executors.EXECUTORS)}")
    workers = workers or executors.default_workers()
    data = load_ohlcv(data_path) if data_path else load_market_data()[0]
    in_sample, out_of_sample = _split_windows(data, split)
    settings = Settings(strategy, initial_capital, commission, slippage)
    out = project.output_dir(output_dir)

    sweep_id = str(uuid.uuid4())
    timestamp = datetime.now(UTC).isoformat(timespec="seconds")
    table = np.full((len(combinations), len(METRIC_NAMES)), np.nan)
    errors: list[str | None] = [None] * len(combinations)
    done = np.zeros(len(combinations), dtype=bool)
    status = "success"
    started = time.perf_counter()
    bar = _progress(len(combinations), strategy, progress)
    # The main process only waits while workers compute: meanwhile, load what the report needs.
    warm = threading.Thread(target=_warm_up_report, daemon=True)
    warm.start()
    try:
        work = executors.chunks(combinations, workers)
        for first, tables, chunk_errors in executors.run(
                executor, data, settings, (in_sample,), work, workers, scheduler):
            rows = slice(first, first + len(chunk_errors))
            table[rows] = tables[0]
            errors[rows] = chunk_errors
            done[rows] = True
            bar.update(len(chunk_errors))
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        bar.close()
    duration = time.perf_counter() - started
    warm.join()

    order = [i for i in rank(table[:, METRIC_INDEX[metric]], metric) if done[i]]
    chosen = order[:top]
    oos = np.full_like(table, np.nan)
    if out_of_sample is not None and chosen:
        oos_tables, _ = evaluate(data, settings, [combinations[i] for i in chosen],
                                 (out_of_sample,))
        oos[chosen] = oos_tables[0]

    info = {
        "sweep_id": sweep_id, "timestamp": timestamp, "strategy_name": strategy,
        "status": status, "metric": metric, "combinations": len(combinations),
        "completed": int(done.sum()), "duration": round(duration, 3),
        "grid": {name: list(values) for name, values in axes.items()},
        "executor": executor, "workers": workers, "scheduler": scheduler,
        "data_path": data_path or "", "split": split or "",
        "settings": {"initial_capital": initial_capital, "commission": commission,
                     "slippage": slippage},
        "combinations_per_second": round(done.sum() / duration, 1) if duration else None,
    }
    best = [_best_entry(i, combinations, table, oos if out_of_sample else None, errors)
            for i in chosen]
    if reports and best:
        _run_reports(strategy, best, info, in_sample, out)
    info["best"] = [{k: v for k, v in entry.items() if k != "metrics_array"} for entry in best]

    tables = [table, oos] if out_of_sample is not None else [table]
    save_sweep(info, combinations, tables, errors, done, out)
    result = SweepResult(sweep_id, strategy, metric, status, axes,
                         _frame(combinations, table, errors, order, axes), best, duration)
    from meridian.sweep.report import write_report

    result.report_path = write_report(result, info, out)
    return result


def _warm_up_report() -> None:
    """Import plotly and build a throw-away figure (plotly loads its validators lazily)."""
    from meridian import viz
    from meridian.sweep import report  # noqa: F401

    viz.sweep_chart(pd.DataFrame({"a": [1, 2], "b": [1, 2], "m": [0.0, 1.0]}), ["a", "b"], "m")


def _progress(total: int, strategy: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"sweep {strategy}", unit="combo", disable=not enabled,
                smoothing=0.1, dynamic_ncols=True)


def _metrics(row: np.ndarray) -> dict[str, float | None]:
    return {name: (None if math.isnan(v) else float(v)) for name, v in zip(METRIC_NAMES, row,
                                                                           strict=True)}


def _best_entry(index, combinations, table, oos, errors) -> dict[str, Any]:
    return {
        "index": int(index), "params": combinations[index], "metrics": _metrics(table[index]),
        "oos_metrics": _metrics(oos[index]) if oos is not None else None,
        "error": errors[index],
    }


def _frame(combinations, table, errors, order, axes) -> pd.DataFrame:
    """Finished combinations best first: the grid's parameters, then every metric (built
    column by column: a 100,000-row sweep must not become 100,000 dicts)."""
    order = np.asarray(order, dtype=np.int64)
    columns = {name: [combinations[i][name] for i in order] for name in axes}
    columns.update({name: table[order, j] for j, name in enumerate(METRIC_NAMES)})
    columns["error"] = [errors[i] for i in order]
    return pd.DataFrame(columns)


def _run_reports(strategy: str, best: list[dict], info: dict, window: Window, out: Path):
    """Re-run the best combinations through the notebook pipeline (papermill, HTML report,
    registry) and check that the notebook reproduces the sweep's metrics exactly."""
    from meridian.pipeline.run import run_notebook

    settings = info["settings"]
    for entry in best:
        params = {**entry["params"], **settings, "data_path": info["data_path"]}
        if window.end:
            params["end"] = window.end[:10]
        record = run_notebook(strategy, params, output_dir=out)
        entry["run_id"], entry["report_path"] = record["run_id"], record["report_path"]
        entry["report_status"] = record["status"]
        entry["matches_notebook"] = record["status"] == "success" and all(
            _same(record["metrics"].get(k), v) for k, v in entry["metrics"].items())


def _same(a, b) -> bool:
    return (a is None and b is None) or a == b
