"""``meridian sweep``: a parameter grid over a strategy module, in-process and in parallel.

No kernel and no notebook per combination: the data is loaded once, each combination calls
the extracted module's ``signals``, and batches go through the vectorized engine. Only the
best few combinations are turned into full notebook reports (``--reports``).

Nothing finished is ever lost: the sweep's folder gets its header before any work and its
results every few seconds while it runs (:mod:`meridian.sweep.store`). Ctrl-C or SIGTERM keeps
them and marks the sweep ``interrupted``; kill -9 loses at most the last few seconds (the next
registry open marks it ``interrupted``); ``meridian sweep --resume ID`` computes only what is
missing. Memory does not grow with the grid beyond 9 bytes a combination (a done flag and the
ranking metric): combinations are decoded from their index when a batch needs them.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meridian import _process, project
from meridian._files import file_sha256
from meridian.data import load_market_data, load_ohlcv
from meridian.engine import METRIC_NAMES
from meridian.exceptions import ParameterError
from meridian.parameters import RUN_SETTING_RANGES
from meridian.registry.db import Registry
from meridian.registry.sweeps import load_sweep, results_dir, save_sweep_header
from meridian.strategies import find_strategy, get_strategy
from meridian.sweep import executors
from meridian.sweep.evaluate import EXIT_OPTIONS, Settings, Window, evaluate
from meridian.sweep.grid import DEFAULT_MAX_COMBINATIONS, Grid, build_grid
from meridian.sweep.store import (
    OOS_PREFIX,
    ResultWriter,
    rank_order,
    read_results,
    read_rows,
    write_part,
)

METRIC_INDEX = {name: i for i, name in enumerate(METRIC_NAMES)}
CHART_LIMIT = 100_000
"""Grids larger than this get no metric chart in the report (a heatmap that size is noise)."""
RESUMABLE = ("interrupted", "running", "failed", "partial")


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: its status, the best combinations, where it lives.

    ``table`` reads every finished combination from the sweep's folder on first use (best
    first): cheap for thousands, the caller's choice for millions."""

    sweep_id: str
    strategy: str
    metric: str
    status: str
    axes: dict[str, list]
    best: list[dict] = field(default_factory=list)  # top K: params, metrics, oos, run ids
    duration: float = 0.0
    completed: int = 0
    combinations: int = 0
    failed: int = 0
    first_error: str | None = None
    report_path: Path | None = None
    output_dir: Path | None = None
    exit_code: int = 0
    chart: pd.DataFrame | None = None
    _table: pd.DataFrame | None = None

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            frame = read_results(self.output_dir, self.sweep_id)
            order = rank_order(frame[self.metric].to_numpy(dtype=float), self.metric)
            columns = [*self.axes, *METRIC_NAMES, "error"]
            self._table = frame.iloc[order][columns].reset_index(drop=True)
        return self._table


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
    return rank_order(values, metric)


def _file_hash(path: str) -> str:
    return file_sha256(path) if path else ""


def _load_data(data_path: str | None) -> pd.DataFrame:
    return load_ohlcv(data_path) if data_path else load_market_data()[0]


@dataclass
class _Plan:
    """Everything a sweep needs to start or resume, checked before any work."""

    info: dict[str, Any]
    grid: Grid
    data: pd.DataFrame
    settings: Settings
    windows: tuple[Window, Window | None]
    done: np.ndarray
    values: np.ndarray


def _new_plan(strategy, grid_options, *, metric, top, executor, workers, scheduler, data_path,
              split, initial_capital, commission, slippage, max_combinations) -> _Plan:
    source = find_strategy(strategy)
    module = get_strategy(source.name)
    ranges = {**RUN_SETTING_RANGES, **getattr(module, "PARAM_RANGES", {})}
    grid = build_grid({**module.PARAMS, **EXIT_OPTIONS}, grid_options, source.name,
                      max_combinations, ranges)
    unused = [name for name in EXIT_OPTIONS if name not in grid.axes]
    grid = Grid({k: v for k, v in grid.defaults.items() if k not in unused}, grid.axes)
    if metric not in METRIC_INDEX:
        raise ParameterError(f"--metric {metric!r} is not a metric; use one of "
                             f"{', '.join(METRIC_NAMES)}")
    if top < 1:
        raise ParameterError(f"--top must be at least 1, got {top}")
    if executor not in executors.EXECUTORS:
        raise ParameterError(f"--executor {executor!r}: use one of "
                             f"{', '.join(executors.EXECUTORS)}")
    data = _load_data(data_path)
    windows = _split_windows(data, split)
    settings = Settings(source.name, source, initial_capital, commission, slippage)
    info = {
        "sweep_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "strategy_name": source.name, "status": "running", "metric": metric,
        "combinations": grid.size, "completed": 0, "failed": 0, "duration": None,
        "grid": grid.axes, "defaults": grid.defaults,
        "executor": executor, "workers": workers, "scheduler": scheduler,
        "data_path": data_path or "", "data_sha256": _file_hash(data_path or ""),
        "module_path": str(source.path), "module_sha256": _file_hash(str(source.path)),
        "split": split or "", "top": top,
        "settings": {"initial_capital": initial_capital, "commission": commission,
                     "slippage": slippage},
    }
    return _Plan(info, grid, data, settings, windows, np.zeros(grid.size, dtype=bool),
                 np.full(grid.size, np.nan))


def _resume_plan(sweep_id: str, out: Path, executor: str, workers: int, scheduler) -> _Plan:
    info = load_sweep(sweep_id, out)
    if info["status"] not in RESUMABLE:
        raise ParameterError(f"sweep {info['sweep_id']} is {info['status']}: nothing to resume")
    source = find_strategy(info["strategy_name"])
    for what, path, digest in (("data file", info["data_path"], info.get("data_sha256")),
                               ("strategy module", str(source.path), info.get("module_sha256"))):
        if path and digest and _file_hash(path) != digest:
            raise ParameterError(f"cannot resume sweep {info['sweep_id'][:8]}: its {what} "
                                 f"{path} changed since it started; start a new sweep")
    grid = Grid(info["defaults"], info["grid"])
    data = _load_data(info["data_path"])
    settings = Settings(source.name, source, **info["settings"])
    done = np.zeros(grid.size, dtype=bool)
    values = np.full(grid.size, np.nan)
    finished = read_results(out, info["sweep_id"], [info["metric"]])
    indices = finished["idx"].to_numpy(dtype=np.int64)
    done[indices] = True
    values[indices] = finished[info["metric"]].to_numpy(dtype=float)
    info.update(status="running", executor=executor, workers=workers, scheduler=scheduler,
                resumed=info.get("resumed", 0) + 1)
    return _Plan(info, grid, data, settings, _split_windows(data, info["split"]), done, values)


def _work(done: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Tasks of ``size`` combinations not done yet, generated lazily in index order."""
    for start in range(0, len(done), size):
        indices = np.arange(start, min(start + size, len(done)), dtype=np.int64)
        missing = indices[~done[indices]]
        if len(missing):
            yield missing


def run_sweep(
    strategy: str | None,
    grid: list[str] | tuple[str, ...] = (),
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
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    resume: str | None = None,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (``NAME=SPEC`` strings) and record the sweep, or
    finish the interrupted sweep ``resume`` (strategy, grid and settings come from it).

    Everything is validated before any work starts. Ctrl-C and SIGTERM stop cleanly: finished
    combinations are kept and the sweep is saved with status ``interrupted``; all combinations
    failing gives ``failed``, some ``partial``.
    """
    workers = workers or executors.default_workers()
    out = project.output_dir(output_dir)
    if resume:
        plan = _resume_plan(resume, out, executor, workers, scheduler)
    else:
        plan = _new_plan(strategy, grid, metric=metric, top=top, executor=executor,
                         workers=workers, scheduler=scheduler, data_path=data_path,
                         split=split, initial_capital=initial_capital, commission=commission,
                         slippage=slippage, max_combinations=max_combinations)
    Registry(out).check()  # a damaged registry stops us here, before any work
    info, metric, top = plan.info, plan.info["metric"], plan.info["top"]
    connection = (executors.connect_dask(workers, scheduler) if executor == "dask" else None)
    info["owner"] = _process.identity()
    save_sweep_header(info, out)

    writer = ResultWriter(out, info["sweep_id"], plan.grid)
    column = METRIC_INDEX[metric]
    failed = int(info.get("failed") or 0)
    first_error: str | None = None
    status, exit_code = "running", 0
    started = time.perf_counter()
    already = int(plan.done.sum())
    bar = _progress(plan.grid.size, already, info["strategy_name"], progress)
    warm = threading.Thread(target=_warm_up_report, daemon=True)
    warm.start()
    try:
        with _process.sigterm_interrupts():
            size = executors.chunk_size(plan.grid.size, workers, len(plan.data))
            work = _work(plan.done, size)
            for indices, tables, errors in executors.run(
                    executor, plan.data, plan.settings, plan.grid, (plan.windows[0],), work,
                    workers, scheduler, connection):
                writer.add(indices, tables[0], errors)
                plan.done[indices] = True
                plan.values[indices] = tables[0][:, column]
                bad = [e for e in errors if e]
                failed += len(bad)
                first_error = first_error or (bad[0] if bad else None)
                bar.update(len(indices))
    except KeyboardInterrupt as interrupt:
        status, exit_code = "interrupted", _process.exit_code(interrupt)
    finally:
        writer.flush()
        bar.close()
    duration = time.perf_counter() - started
    completed = int(plan.done.sum())
    if status != "interrupted":
        status = ("failed" if completed and failed >= completed
                  else "partial" if failed else "success")

    order = [int(i) for i in rank_order(plan.values, metric)[:top] if plan.done[i]]
    best = _best_entries(out, info, order)
    if plan.windows[1] is not None and best and status != "interrupted":
        _out_of_sample(out, plan, best)
    info.update(status=status, completed=completed, failed=failed,
                duration=round((info.get("duration") or 0) + duration, 3),
                combinations_per_second=round((completed - already) / duration, 1)
                if duration else None,
                first_error=first_error)
    if reports and best and status != "interrupted":
        _run_reports(info["strategy_name"], best, info, plan.windows[0], out)
    info["best"] = best
    save_sweep_header(info, out)
    warm.join()
    result = SweepResult(
        info["sweep_id"], info["strategy_name"], metric, status, plan.grid.axes, best,
        duration, completed, plan.grid.size, failed, first_error, output_dir=out,
        exit_code=exit_code, chart=_chart_frame(plan.grid, plan.done, plan.values, metric))
    from meridian.sweep.report import write_report

    result.report_path = write_report(result, info, out)
    return result


def _best_entries(out: Path, info: dict, order: list[int]) -> list[dict[str, Any]]:
    """The rows of the best combinations, read back from the sweep's files (exact floats)."""
    if not order:
        return []
    frame = read_rows(out, info["sweep_id"], order).set_index("idx")
    entries = []
    for index, row in frame.iterrows():
        entries.append({
            "index": int(index),
            "params": {**info["defaults"], **{n: _plain(row[n]) for n in info["grid"]}},
            "metrics": _metrics(row[list(METRIC_NAMES)].to_numpy(dtype=float)),
            "oos_metrics": None,
            "error": row["error"] if isinstance(row["error"], str) else None,
        })
    return entries


def _out_of_sample(out: Path, plan: _Plan, best: list[dict]) -> None:
    """The best combinations on the bars after the split, recorded beside the in-sample rows."""
    indices = np.array([entry["index"] for entry in best], dtype=np.int64)
    tables, errors = evaluate(plan.data, plan.settings, plan.grid.combinations(indices),
                              (plan.windows[1],))
    folder = results_dir(out, plan.info["sweep_id"])
    write_part(folder, len(list(folder.glob("oos-*.parquet"))), plan.grid, indices,
               tables[0], errors, prefix=OOS_PREFIX)
    for entry, row in zip(best, tables[0], strict=True):
        entry["oos_metrics"] = _metrics(row)


def _chart_frame(grid: Grid, done: np.ndarray, values: np.ndarray, metric: str):
    """The ranking metric over the grid's axes, for the report's chart (small grids only)."""
    if grid.size > CHART_LIMIT or not done.any():
        return None
    indices = np.flatnonzero(done)
    frame = pd.DataFrame({name: [axis[p] for p in positions] for (name, axis), positions in
                          zip(grid.axes.items(), grid.positions(indices), strict=True)})
    frame[metric] = values[indices]
    return frame


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _warm_up_report() -> None:
    """Import plotly and build a throw-away figure (plotly loads its validators lazily)."""
    from meridian import viz
    from meridian.sweep import report  # noqa: F401

    viz.sweep_chart(pd.DataFrame({"a": [1, 2], "b": [1, 2], "m": [0.0, 1.0]}), ["a", "b"], "m")


def _progress(total: int, initial: int, strategy: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"sweep {strategy}", unit="combo",
                disable=not enabled, smoothing=0.1, dynamic_ncols=True)


def _metrics(row: np.ndarray) -> dict[str, float | None]:
    return {name: (None if math.isnan(v) else float(v)) for name, v in zip(METRIC_NAMES, row,
                                                                           strict=True)}


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

