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
import os
import sys
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
from meridian.data import resolve_data
from meridian.engine import METRIC_NAMES
from meridian.engine.metrics import metric_info
from meridian.exceptions import ParameterError
from meridian.parameters import check_windows
from meridian.record import clean_json, downsample
from meridian.registry.db import Registry
from meridian.registry.sweeps import load_sweep, save_sweep_header
from meridian.settings import RANGES, WINDOW, RunSettings
from meridian.strategies import find_strategy, get_strategy, strategy_settings
from meridian.sweep import executors
from meridian.sweep.evaluate import SKIPPED, Job, Markets, Window, fusable
from meridian.sweep.grid import DEFAULT_MAX_COMBINATIONS, Grid, build_grid
from meridian.sweep.store import (
    OOS_PREFIX,
    ResultWriter,
    rank_order,
    read_results,
    read_returns,
    read_rows,
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
    skipped: int = 0  # combinations that break the strategy's PARAM_RULES: left out
    report_path: Path | None = None
    output_dir: Path | None = None
    exit_code: int = 0
    chart: pd.DataFrame | None = None
    stats: dict | None = None
    walk_forward: dict | None = None
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


def _load_data(data_path: str | None, universe: str | None = None):
    if universe:
        from meridian.universe import load_universe

        return Markets.of(load_universe(universe))
    return resolve_data(data_path)


@dataclass
class _Plan:
    """Everything a sweep needs to start or resume, checked before any work."""

    info: dict[str, Any]
    grid: Grid
    data: pd.DataFrame
    job: Job
    in_sample: Window
    split: Window | None
    done: np.ndarray
    values: np.ndarray
    folds: list = field(default_factory=list)

    def evaluated_windows(self) -> tuple[Window, ...]:
        """What every task measures: the in-sample window first (ranked, stored), then the
        out-of-sample one of a split, or each walk-forward training window."""
        if self.split is not None:
            return self.in_sample, self.split
        return (self.in_sample, *(fold.window("train") for fold in self.folds))


def _sample(job: Job, size: int) -> Job:
    """The job, marking an even sample of at most PBO_MAX_COLUMNS combinations whose returns
    are kept for the overfitting statistics."""
    from dataclasses import replace

    from meridian.stats import PBO_MAX_COLUMNS

    stride = max(1, -(-size // PBO_MAX_COLUMNS))
    return replace(job, sample_stride=stride, sample_size=PBO_MAX_COLUMNS)


def _folds(info: dict, data: pd.DataFrame, grid: Grid) -> list:
    if not info.get("walk_forward"):
        return []
    from meridian.sweep.walkforward import folds, warm_up

    return folds(info["walk_forward"], data.index, bool(info.get("anchored")),
                 warm_up(grid.axes))


def _grid(module, name: str, options, settings: RunSettings, max_combinations: int) -> Grid:
    """The grid over the strategy's parameters and any run setting (each checked against its
    range); the settings a grid does not vary stay the sweep's, out of the combinations."""
    own = module.PARAMS
    sweepable = {k: v for k, v in settings.as_dict().items() if k not in own}
    for option in options:
        setting = str(option).partition("=")[0].strip()
        if setting in WINDOW and setting not in own:
            raise ParameterError(f"--grid {setting}: the trading window cannot vary per "
                                 f"combination; use --set {setting}=YYYY-MM-DD, --split or "
                                 "--walk-forward")
    ranges = {**RANGES, **getattr(module, "PARAM_RANGES", {})}
    grid = build_grid({**own, **sweepable}, options, name, max_combinations, ranges)
    return Grid({k: v for k, v in grid.defaults.items() if k in own or k in grid.axes},
                grid.axes)


def _check_windows(module, grid: Grid, data, owner: str) -> None:
    """The longest value of each of the strategy's ``WINDOWS`` against the data, before any
    work (see :func:`~meridian.parameters.check_windows`)."""
    bars = (max(len(frame) for frame in data.frames.values()) if isinstance(data, Markets)
            else len(data))
    for name in getattr(module, "WINDOWS", ()):
        numbers = [v for v in grid.axes.get(name, [grid.defaults.get(name)])
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers:
            check_windows({name: max(numbers)}, [name], bars, owner)


def _new_plan(strategy, grid_options, *, metric, top, executor, workers, scheduler, data_path,
              split, settings, options, max_combinations, walk_forward=None,
              anchored=False, universe=None) -> _Plan:
    source = find_strategy(strategy)
    module = get_strategy(source.name)
    chosen_universe = None
    if universe:  # the module's settings, the universe's over them, --set over those
        from meridian.universe import load_universe

        chosen_universe = load_universe(universe)
        given = {**dict(settings or {}), **{k: v for k, v in options.items() if v is not None}}
        settings = chosen_universe.settings(strategy_settings(module), **given)
    else:
        settings = strategy_settings(module, settings, **options)
    grid = _grid(module, source.name, grid_options, settings, max_combinations)
    if metric not in METRIC_INDEX:
        raise ParameterError(f"--metric {metric!r} is not a metric; use one of "
                             f"{', '.join(METRIC_NAMES)}")
    if top < 1:
        raise ParameterError(f"--top must be at least 1, got {top}")
    if executor not in executors.EXECUTORS:
        raise ParameterError(f"--executor {executor!r}: use one of "
                             f"{', '.join(executors.EXECUTORS)}")
    data = Markets.of(chosen_universe) if chosen_universe else _load_data(data_path)
    _check_windows(module, grid, data, source.name)
    in_sample, out_of_sample = _split_windows(data, split)
    job = _sample(Job(source.name, source, settings), grid.size)
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
        "walk_forward": walk_forward or "", "anchored": bool(anchored),
        "settings": settings.recorded(),
        "universe": chosen_universe.provenance() if chosen_universe else None,
    }
    return _Plan(info, grid, data, job, in_sample, out_of_sample,
                 np.zeros(grid.size, dtype=bool), np.full(grid.size, np.nan),
                 _folds(info, data, grid))


def _resume_plan(sweep_id: str, out: Path, executor: str, workers: int, scheduler) -> _Plan:
    info = load_sweep(sweep_id, out)
    if info["status"] not in RESUMABLE:
        raise ParameterError(f"sweep {info['sweep_id']} is {info['status']}: nothing to resume")
    source = find_strategy(info["strategy_name"])
    universe = info.get("universe") or {}
    for what, path, digest in (("data file", info["data_path"], info.get("data_sha256")),
                               ("strategy module", str(source.path), info.get("module_sha256")),
                               ("universe", universe.get("path"), universe.get("sha256"))):
        if path and digest and _file_hash(path) != digest:
            raise ParameterError(f"cannot resume sweep {info['sweep_id'][:8]}: its {what} "
                                 f"{path} changed since it started; start a new sweep")
    grid = Grid(info["defaults"], info["grid"])
    data = _load_data(info["data_path"], universe.get("path"))
    job = _sample(Job(source.name, source, RunSettings.of(info["settings"])), grid.size)
    done = np.zeros(grid.size, dtype=bool)
    values = np.full(grid.size, np.nan)
    finished = read_results(out, info["sweep_id"], [info["metric"]])
    indices = finished["idx"].to_numpy(dtype=np.int64)
    done[indices] = True
    values[indices] = finished[info["metric"]].to_numpy(dtype=float)
    info.update(status="running", executor=executor, workers=workers, scheduler=scheduler,
                resumed=info.get("resumed", 0) + 1)
    in_sample, out_of_sample = _split_windows(data, info["split"])
    return _Plan(info, grid, data, job, in_sample, out_of_sample, done, values,
                 _folds(info, data, grid))


def _work(done: np.ndarray, size: int, largest: int | None = None,
          workers: int = 1) -> Iterator[np.ndarray]:
    """Tasks of the combinations not done yet, generated lazily in index order: of
    ``largest`` combinations while a quarter of what is left per worker is more, then
    shrinking to ``size`` (guided self-scheduling), so that big tasks, which save a Dask
    cluster its per-task cost, do not leave one worker busy alone at the end."""
    largest = max(size, largest or size)
    left = int(len(done) - np.count_nonzero(done))
    start = 0
    while start < len(done):
        step = min(largest, max(size, left // (4 * workers)))
        indices = np.arange(start, min(start + step, len(done)), dtype=np.int64)
        start += step
        missing = indices[~done[indices]]
        left -= len(missing)
        if len(missing):
            yield missing


def _capped_workers(workers: int, combinations: int, executor: str,
                    scheduler: str | None) -> int:
    """No more workers than combinations left, nor (on this machine: the local pool or a
    local Dask cluster) than cores: ``--workers 10000`` would only fork idle processes."""
    limit = max(combinations, 1)
    if executor == "local" or not scheduler:
        limit = min(limit, executors.default_workers())
    return min(workers, limit)


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
    walk_forward: str | None = None,
    anchored: bool = False,
    settings: RunSettings | dict | None = None,
    initial_capital: float | None = None,
    commission: float | None = None,
    slippage: float | None = None,
    output_dir: str | Path | None = None,
    progress: bool = True,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    resume: str | None = None,
    universe: str | Path | None = None,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (``NAME=SPEC`` strings) and record the sweep, or
    finish the interrupted sweep ``resume`` (strategy, grid and settings come from it).

    ``split`` ranks on the bars before a date and measures every combination after it too;
    ``walk_forward`` (``TRAIN:TEST[:STEP]``, see :mod:`meridian.sweep.walkforward`) chooses
    on each training window and trades the next test window, recording the stitched
    out-of-sample run. Every sweep measures its own over-fitting (:mod:`meridian.stats`): the
    deflated Sharpe ratio of its best combination, the probability of backtest overfitting of
    its ranking, and bootstrap bands of the best one's drawdown and CAGR.

    The run settings (:class:`~meridian.settings.RunSettings`) are the strategy
    module's own ``SETTINGS`` (its notebook's parameters cell), with ``settings`` (a mapping
    of names to values, as ``--set`` gives; a ``RunSettings`` replaces them whole) and
    ``initial_capital`` / ``commission`` / ``slippage`` on top; a grid may vary a setting too
    (``--grid stop_loss=0.02,0.05``, ``--grid multiplier=1,50``), except the trading window.
    ``universe`` (a name or a ``.toml`` path) makes every combination a portfolio backtest of
    all its markets with one account, ranked on the portfolio's metric (the universe's
    account settings over the module's, ``settings`` over those).

    Everything is validated before any work starts. Ctrl-C and SIGTERM stop cleanly: finished
    combinations are kept and the sweep is saved with status ``interrupted``; all combinations
    failing gives ``failed``, some ``partial``.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"--workers {workers!r}: a whole number of processes, at least 1")
    workers = workers or executors.default_workers()
    out = project.output_dir(output_dir)
    if split and walk_forward:
        raise ParameterError("--walk-forward and --split both choose what is out of sample; "
                             "use one of them")
    if resume:
        plan = _resume_plan(resume, out, executor, workers, scheduler)
    else:
        options = {"initial_capital": initial_capital, "commission": commission,
                   "slippage": slippage}
        plan = _new_plan(strategy, grid, metric=metric, top=top, executor=executor,
                         workers=workers, scheduler=scheduler, data_path=data_path,
                         split=split, settings=settings, options=options,
                         max_combinations=max_combinations, walk_forward=walk_forward,
                         anchored=anchored, universe=universe)
    Registry(out).check()  # a damaged registry stops us here, before any work
    workers = _capped_workers(workers, int(plan.grid.size - plan.done.sum()), executor,
                              scheduler)
    plan.info["workers"] = workers
    info, metric, top = plan.info, plan.info["metric"], plan.info["top"]
    connection = (executors.connect_dask(workers, scheduler) if executor == "dask" else None)
    info["owner"] = _process.identity()
    save_sweep_header(info, out)

    writer = ResultWriter(out, info["sweep_id"], plan.grid)
    column, sharpe = METRIC_INDEX[metric], METRIC_INDEX["sharpe_ratio"]
    windows = plan.evaluated_windows()
    failed = int(info.get("failed") or 0)
    skipped = int(info.get("skipped") or 0)
    first_error: str | None = None
    first_skip: str | None = None
    status, exit_code = "running", 0
    started = time.perf_counter()
    already = int(plan.done.sum())
    sharpes = _Moments()
    fold_best = [(np.nan, -1)] * len(plan.folds)
    fused = fusable(plan.data, plan.job)
    if fused and progress:
        from meridian.engine import _fused

        if not _fused.cached():
            print("compiling the sweep kernels: once, several seconds; later sweeps load them "
                  f"from {os.environ.get('NUMBA_CACHE_DIR')}", file=sys.stderr, flush=True)
    bar = _progress(plan.grid.size, already, info["strategy_name"], progress)
    warm = threading.Thread(target=_warm_up_report, daemon=True)
    warm.start()
    try:
        with _process.sigterm_interrupts():
            size = executors.chunk_size(plan.grid.size, workers, len(plan.data), fused)
            largest = executors.chunk_size(plan.grid.size, workers, len(plan.data), fused,
                                           dask=executor == "dask")
            work = _work(plan.done, size, largest, workers)
            for indices, tables, errors, kept, kept_indices in executors.run(
                    executor, plan.data, plan.job, plan.grid, windows, work, workers,
                    scheduler, connection):
                writer.add(indices, tables[0], errors,
                           tables[1] if plan.split is not None else None, kept, kept_indices)
                plan.done[indices] = True
                plan.values[indices] = tables[0][:, column]
                sharpes.add(tables[0][:, sharpe])
                for number in range(len(plan.folds)):
                    fold_best[number] = _better(fold_best[number], tables[number + 1][:, column],
                                                indices, metric)
                bad = [e for e in errors if e and not e.startswith(SKIPPED)]
                left_out = [e for e in errors if e and e.startswith(SKIPPED)]
                skipped += len(left_out)
                failed += len(bad)
                first_error = first_error or (bad[0] if bad else None)
                first_skip = first_skip or (left_out[0] if left_out else None)
                bar.update(len(indices))
    except KeyboardInterrupt as interrupt:
        status, exit_code = "interrupted", _process.exit_code(interrupt)
    finally:
        writer.flush()
        bar.close()
    duration = time.perf_counter() - started
    completed = int(plan.done.sum())
    if status != "interrupted":
        status = ("failed" if completed and failed >= completed - skipped
                  else "partial" if failed else "success")
        if status == "failed":
            first_error = first_error or first_skip  # perhaps nothing ran: say which rule

    info.update(status=status, completed=completed, failed=failed, skipped=skipped,
                duration=round((info.get("duration") or 0) + duration, 3),
                combinations_per_second=round((completed - already) / duration, 1)
                if duration else None,
                first_error=first_error)
    try:
        order = [int(i) for i in rank_order(plan.values, metric)[:top] if plan.done[i]]
        best = [entry for entry in _best_entries(out, info, order)
                if not str(entry.get("error") or "").startswith(SKIPPED)]
        if best and status != "interrupted" and best[0]["error"] is None:
            info["stats"] = _overfitting(out, plan, best[0], completed - skipped, sharpes)
            if plan.folds:
                info["walk_forward_result"] = _walk_forward(out, plan, fold_best)
        if reports and best and status != "interrupted":
            _run_reports(info["strategy_name"], best, info, windows[0], out)
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C while summarizing: every row is saved;
        info["status"] = "interrupted"  # `--resume` finds none missing and summarizes
        save_sweep_header(info, out)
        raise
    info["best"] = best
    save_sweep_header(info, out)
    warm.join()
    result = SweepResult(
        info["sweep_id"], info["strategy_name"], metric, status, plan.grid.axes, best,
        duration, completed, plan.grid.size, failed, first_error, skipped=skipped, output_dir=out,
        exit_code=exit_code, chart=_chart_frame(plan.grid, plan.done, plan.values, metric),
        stats=info.get("stats"), walk_forward=info.get("walk_forward_result"))
    from meridian.sweep.report import write_report

    result.report_path = write_report(result, info, out)
    from meridian.dashboard import refresh_dashboard

    stitched = (info.get("walk_forward_result") or {}).get("run_id")
    refresh_dashboard(out, run_ids=[stitched] if stitched else [])  # the sweeps list, too
    return result


class _Moments:
    """Running count, mean and variance (Welford) of the combinations' Sharpe ratios."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if not len(values):
            return
        count, mean = len(values), float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta ** 2 * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    @property
    def variance(self) -> float:
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0


def _better(current: tuple[float, int], values: np.ndarray, indices: np.ndarray,
            metric: str) -> tuple[float, int]:
    """The best (value, combination) so far of one walk-forward window; ties go to the lower
    index, whatever order the tasks finished in (so every executor chooses alike)."""
    lower = metric_info(metric).better == "lower"
    for value, index in zip(values, indices, strict=True):
        if np.isnan(value):
            continue
        value, index = float(value), int(index)
        if current[1] < 0 or (value < current[0] if lower else value > current[0]) or (
                value == current[0] and index < current[1]):
            current = (value, index)
    return current


def _overfitting(out: Path, plan: _Plan, best: dict, trials: int,
                 sharpes: _Moments) -> dict[str, Any]:
    """DSR, PSR, PBO and bootstrap bands of the sweep (see :mod:`meridian.stats`)."""
    from meridian import stats
    from meridian.engine.metrics import returns_from_equity
    from meridian.sweep.evaluate import positions, run_window

    targets, settings, exits, levels = positions(plan.data, plan.job, best["params"])
    periods = settings.periods(plan.data.index)
    result = run_window(plan.data, targets, settings, plan.evaluated_windows()[0], exits,
                        levels)
    returns = returns_from_equity(result.sim.equity[:, 0], settings.initial_capital)
    variance = sharpes.variance / periods  # annualized Sharpe ratios → per period
    matrix = read_returns(out, plan.info["sweep_id"])
    pbo = None
    if matrix is not None and matrix.shape[1] >= 2:
        pbo = stats.probability_of_backtest_overfitting(matrix, n_splits=16)
    dsr = stats.deflated_sharpe_ratio(returns, trials, variance)
    return {
        "trials": trials, "sharpe_variance": variance,
        "psr": stats.probabilistic_sharpe_ratio(returns, 0.0), "dsr": dsr,
        "pbo": pbo, "pbo_columns": None if matrix is None else int(matrix.shape[1]),
        "bootstrap": stats.block_bootstrap(returns, periods_per_year=periods),
        "verdict": stats.verdict(dsr, pbo),
    }


def _walk_forward(out: Path, plan: _Plan, fold_best: list[tuple[float, int]]) -> dict:
    """Trade each window's choice on its test part, stitch, record the stitched run."""
    from meridian.engine import compute_metrics
    from meridian.sweep.evaluate import positions, run_window
    from meridian.sweep.walkforward import stability, stitch

    rows, results, chosen = [], [], []
    for fold, (value, index) in zip(plan.folds, fold_best, strict=True):
        if index < 0:
            continue
        params = plan.grid[index]
        targets, settings, exits, levels = positions(plan.data, plan.job, params)
        result = run_window(plan.data, targets, settings, fold.window("test"), exits, levels)
        outside = compute_metrics(result)
        results.append(result)
        chosen.append({name: params[name] for name in plan.grid.axes})
        rows.append({**fold.dates(), "window": fold.number, "index": index,
                     "params": chosen[-1], "in_sample": value,
                     "out_of_sample": outside[plan.info["metric"]],
                     "oos_total_return": outside["total_return"]})
    stitched = stitch(results, plan.job.settings.initial_capital)
    run_id = _record_stitched(out, plan, stitched, rows)
    # the hindsight benchmark: the combination ranked best on all the in-sample data, traded
    # over the same span as the stitched test windows
    best = int(rank_order(plan.values, plan.info["metric"])[0])
    params = plan.grid[best]
    targets, settings, exits, levels = positions(plan.data, plan.job, params)
    span = Window(start=str(stitched.index[0]), end=str(stitched.index[-1]))
    hindsight = run_window(plan.data, targets, settings, span, exits, levels)
    return {"spec": plan.info["walk_forward"], "anchored": plan.info["anchored"],
            "windows": rows, "run_id": run_id, "metrics": compute_metrics(stitched),
            "equity": downsample(stitched.equity),
            "best_equity": downsample(hindsight.equity),
            "best_params": {name: params[name] for name in plan.grid.axes},
            "stability": stability(chosen, plan.grid.axes)}


def _record_stitched(out: Path, plan: _Plan, stitched, rows: list[dict]) -> str:
    """The stitched out-of-sample curve as a run of its own (kind ``walk_forward``), with
    its report beside it."""
    from meridian._report import write_record_report
    from meridian.engine import compute_metrics
    from meridian.record import RunRecord, data_provenance, environment, markets_provenance
    from meridian.storage import save_run

    info = plan.info
    record = RunRecord(
        run_id=str(uuid.uuid4()), timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=info["strategy_name"], kind="walk_forward",
        name=f"walk-forward {info['walk_forward']}{' anchored' if info['anchored'] else ''}",
        params={"walk_forward": info["walk_forward"], "anchored": info["anchored"],
                "metric": info["metric"], "windows": len(rows), "sweep_id": info["sweep_id"]},
        metrics=compute_metrics(stitched), equity=stitched.equity, drawdown=stitched.drawdown,
        trades=stitched.trades, settings=dict(info["settings"]),
        data=(markets_provenance(plan.data.frames) if isinstance(plan.data, Markets)
              else data_provenance(plan.data, info["settings"].get("periods_per_year"))),
        environment=environment(), universe=info.get("universe"),
        prices=None if isinstance(plan.data, Markets) else plan.data.loc[stitched.index],
    )
    record.logs.append(f"{len(rows)} walk-forward windows, sweep {info['sweep_id']}")
    report = project.run_dir(out, record.run_id) / "report.html"
    write_record_report(record, report, out)
    save_run({**record.to_dict(), "report_path": str(report)}, out)
    return record.run_id


def _best_entries(out: Path, info: dict, order: list[int]) -> list[dict[str, Any]]:
    """The rows of the best combinations, read back from the sweep's files (exact floats)."""
    if not order:
        return []
    frame = read_rows(out, info["sweep_id"], order).set_index("idx")
    entries = []
    for index, row in frame.iterrows():
        entries.append({
            "index": int(index),
            "params": {**info["defaults"], **{n: clean_json(row[n], n) for n in info["grid"]}},
            "metrics": _metrics(row[list(METRIC_NAMES)].to_numpy(dtype=float)),
            "oos_metrics": _metrics(row[[OOS_PREFIX + n for n in METRIC_NAMES]]
                                    .to_numpy(dtype=float))
            if OOS_PREFIX + METRIC_NAMES[0] in row.index else None,
            "error": row["error"] if isinstance(row["error"], str) else None,
        })
    return entries


def _chart_frame(grid: Grid, done: np.ndarray, values: np.ndarray, metric: str):
    """The ranking metric over the grid's axes, for the report's chart (small grids only)."""
    if grid.size > CHART_LIMIT or not done.any():
        return None
    indices = np.flatnonzero(done)
    frame = pd.DataFrame({name: [axis[p] for p in positions] for (name, axis), positions in
                          zip(grid.axes.items(), grid.positions(indices), strict=True)})
    frame[metric] = values[indices]
    frame["idx"] = indices
    return frame


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
    loud = sys.stderr.isatty()
    for number, entry in enumerate(best, start=1):
        params = {**entry["params"], **settings, "data_path": info["data_path"]}
        if window.end:
            params["end"] = window.end[:10]
        if loud:
            print(f"report {number} of {len(best)}: {strategy} {entry['params']}",
                  file=sys.stderr, flush=True)
        record = run_notebook(strategy, params, output_dir=out, progress=loud,
                              universe=(info.get("universe") or {}).get("path"))
        entry["run_id"], entry["report_path"] = record["run_id"], record["report_path"]
        entry["report_status"] = record["status"]
        entry["matches_notebook"] = record["status"] == "success" and all(
            _same(record["metrics"].get(k), v) for k, v in entry["metrics"].items())


def _same(a, b) -> bool:
    """The same metric value: both undefined, or the same float."""
    if a is None or b is None:
        return a is None and b is None
    return a == b

