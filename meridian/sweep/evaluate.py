"""Evaluating a batch of parameter combinations in one vectorized backtest.

Each combination calls the strategy module's ``signals`` (the extracted notebook code) with
its parameters — and its ``exits``, when the module has one (price levels such as the FLD line
as the stop) — and the positions become the columns of a bars × combinations matrix that the
engine simulates and measures in one pass (:func:`~meridian.engine.backtest_batch`,
:func:`~meridian.engine.compute_metrics_batch`) with the sweep's
:class:`~meridian.settings.RunSettings` — the same functions and settings
``run_backtest`` uses, so every row equals a single backtest with those parameters and
settings, float for float.

When the module offers ``signals_batch`` (the shipped ``fld`` and ``sma_cross`` do: their
signals over bars × combinations, each distinct indicator line computed once), each
combination is instead one compiled pass (:mod:`meridian.engine._fused`) that fills, measures
and forgets it: no bars × combinations array per step; about 1e8 bar × combinations a second
per core without exits, 6e7 with stops, contracts or volatility sizing. A grid over the exit
fractions stays one pass. Its rows equal ``run_backtest``'s float for float (its sums are
numpy's own, pairwise). A module without ``signals_batch``, one whose
``signals_batch`` declines (returns None: it must when a combination has price levels, its
``exits``), a grid over another run setting, or a price level given as a setting, takes the
path above.

A grid may vary run settings too: the exit fractions vary inside one pass (one per column);
any other setting (``multiplier``, ``sizing``…) splits the batch into one pass per distinct
value.

Over a universe (:class:`Markets`), each combination is one portfolio backtest
(:func:`~meridian.engine.portfolio.backtest_portfolio`): the strategy on every market, one
account — what ``run_portfolio`` does with the same parameters and settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from meridian.engine import (
    METRIC_NAMES,
    _fused,
    as_positions,
    backtest_batch,
    compute_metrics_batch,
)
from meridian.engine.metrics import returns_from_equity
from meridian.exceptions import ParameterError
from meridian.parameters import broken_rules, check_rules
from meridian.settings import EXITS, NAMES, RunSettings
from meridian.strategies import (
    StrategySource,
    accepted,
    exit_levels,
    get_strategy,
    load_module,
    market_positions,
)

SETTINGS = frozenset(NAMES)


@dataclass(frozen=True)
class Job:
    """What every combination of a sweep shares: the strategy and the run settings."""

    strategy: str
    source: StrategySource | None = None  # where the module lives (workers load it by path)
    settings: RunSettings = field(default_factory=RunSettings)
    sample_stride: int = 1  # every stride-th combination's returns are kept (for PBO)
    sample_size: int = 0

    def module(self):
        return load_module(self.source) if self.source else get_strategy(self.strategy)


@dataclass
class Markets:
    """A universe's bars for a sweep: each market's frame, their contracts and the union of
    their dates (what windows, folds and annualization read, as from one frame's index)."""

    frames: dict[str, pd.DataFrame]
    contracts: dict[str, dict]
    provenance: dict[str, Any]
    attrs: dict = field(default_factory=dict)

    @classmethod
    def of(cls, universe) -> Markets:
        return cls(universe.frames(), universe.contracts(), universe.provenance())

    @property
    def index(self) -> pd.DatetimeIndex:
        frames = list(self.frames.values())
        index = frames[0].index
        for frame in frames[1:]:
            if not frame.index.equals(index):
                index = index.union(frame.index)
        return index

    def __len__(self) -> int:
        return len(self.index)

    def copy(self) -> Markets:
        return Markets({name: frame.copy() for name, frame in self.frames.items()},
                       self.contracts, self.provenance)


@dataclass(frozen=True)
class Window:
    """Trading window (inclusive dates, None = the settings' own ``start`` / ``end``)."""

    start: str | None = None
    end: str | None = None


def split_params(params: dict[str, Any], strategy_params=()) -> tuple[dict, dict]:
    """A combination's strategy parameters and its run settings (names of
    :class:`RunSettings` that are not the strategy's own parameters)."""
    settings = {k: v for k, v in params.items() if k in SETTINGS and k not in strategy_params}
    return {k: v for k, v in params.items() if k not in settings}, settings


@dataclass
class _Batch:
    """Targets, price levels and settings of some combinations, ready for the engine."""

    targets: np.ndarray
    errors: list[str | None]
    levels: dict[str, np.ndarray] = field(default_factory=dict)
    settings: list[dict] = field(default_factory=list)


SKIPPED = "skipped: "
"""How a combination that breaks the strategy's ``PARAM_RULES`` (``fast < slow``) is marked:
left out of the sweep, not counted as failed (as backtesting.py's ``constraint``)."""


def _skipped(module, strategy_params: dict, owner: str) -> str | None:
    """:data:`SKIPPED` and the rule when the combination breaks one of the module's rules."""
    try:
        check_rules(strategy_params, getattr(module, "PARAM_RULES", None), owner)
    except ParameterError as error:
        return SKIPPED + str(error)
    return None


def _prepare(data: pd.DataFrame, job: Job, combinations: list[dict]) -> _Batch:
    module = job.module()
    exits = getattr(module, "exits", None)
    batch = _Batch(np.zeros((len(data), len(combinations)), order="F"),
                   [None] * len(combinations))
    for column, params in enumerate(combinations):
        strategy_params, settings = split_params(params, module.PARAMS)
        batch.settings.append(settings)
        batch.errors[column] = _skipped(module, strategy_params, job.strategy)
        if batch.errors[column]:
            continue
        try:
            batch.targets[:, column] = as_positions(
                module.signals(data, **accepted(module.signals, strategy_params)), data.index)
            levels = exit_levels(exits, data, strategy_params) if exits is not None else {}
        except Exception as error:  # noqa: BLE001 - one bad combination must not stop a sweep
            batch.errors[column] = f"{type(error).__name__}: {error}"
            continue
        for name, level in levels.items():
            if not level.index.equals(data.index):
                batch.errors[column] = f"EngineError: exits' {name} level is indexed " \
                                       "differently from the data"
                continue
            matrix = batch.levels.setdefault(
                name, np.full((len(data), len(combinations)), np.nan, order="F"))
            matrix[:, column] = level.to_numpy(dtype=float, na_value=np.nan)
            settings[name] = 0.0  # the level replaces that fraction, as in run_backtest
    return batch


def _groups(batch: _Batch) -> dict[tuple, list[int]]:
    """Columns by the settings they need beyond the exit fractions (one engine pass each)."""
    if not any(batch.settings):  # the usual sweep: one pass for the whole batch
        return {(): list(range(len(batch.settings)))}
    groups: dict[tuple, list[int]] = {}
    for column, settings in enumerate(batch.settings):
        key = tuple(sorted((k, v) for k, v in settings.items() if k not in EXITS))
        groups.setdefault(key, []).append(column)
    return groups


def evaluate(
    data: pd.DataFrame, job: Job, combinations: list[dict], windows: tuple[Window, ...],
    keep_returns: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[str | None], np.ndarray | None]:
    """Metrics (combinations × METRIC_NAMES, one matrix per window), per-combination errors,
    and the bar returns on the first window of the combinations ``keep_returns`` marks
    (float32, bars × marked; for the overfitting statistics), or None.

    A combination whose ``signals`` (or settings) fail gets NaN metrics and its error; the
    others go on.
    """
    if isinstance(data, Markets):
        return _evaluate_markets(data, job, combinations, windows, keep_returns)
    fused = _evaluate_fused(data, job, combinations, windows, keep_returns)
    if fused is not None:
        return fused
    batch = _prepare(data, job, combinations)
    count = len(combinations)
    tables = [np.full((count, len(METRIC_NAMES)), np.nan) for _ in windows]
    kept_columns = np.flatnonzero(keep_returns) if keep_returns is not None else np.array([])
    kept = None
    for key, columns in _groups(batch).items():
        chosen = slice(None) if len(columns) == count else columns  # no copy for one pass
        try:
            settings = job.settings.replace(**dict(key))
        except Exception as error:  # noqa: BLE001 - e.g. sizing without target_volatility
            for column in columns:
                batch.errors[column] = batch.errors[column] or f"{type(error).__name__}: {error}"
            continue
        exits = {name: np.array([batch.settings[c].get(name, getattr(settings, name))
                                 for c in columns], dtype=float)
                 for name in EXITS if any(name in batch.settings[c] for c in columns)}
        levels = {name: matrix[:, chosen] for name, matrix in batch.levels.items()}
        for number, window in enumerate(windows):
            result = run_window(data, batch.targets[:, chosen], settings, window, exits, levels)
            metrics = compute_metrics_batch(result)
            tables[number][columns] = np.column_stack([metrics[name] for name in METRIC_NAMES])
            wanted = np.isin(columns, kept_columns)
            if number == 0 and wanted.any():
                returns = returns_from_equity(result.sim.equity[:, wanted],
                                              settings.initial_capital).astype(np.float32)
                if kept is None:
                    kept = np.full((returns.shape[0], len(kept_columns)), np.nan, np.float32)
                kept[:, np.searchsorted(kept_columns, np.asarray(columns)[wanted])] = returns
    failed = [i for i, error in enumerate(batch.errors) if error]
    for table in tables:
        table[failed] = np.nan
    return tables, batch.errors, kept


def fusable(data: pd.DataFrame | Markets, job: Job) -> bool:
    """Whether :func:`evaluate` may take the fused path (the module offers ``signals_batch``
    and the settings are ones :mod:`meridian.engine._fused` covers)."""
    return (not isinstance(data, Markets) and hasattr(job.module(), "signals_batch")
            and _fused.fusable(job.settings))


def _evaluate_fused(data: pd.DataFrame, job: Job, combinations: list[dict],
                    windows: tuple[Window, ...], keep_returns: np.ndarray | None):
    """:func:`evaluate_columns` of a list of combinations."""
    if not fusable(data, job) or not combinations:
        return None
    names = dict.fromkeys(name for params in combinations for name in params)
    columns = {name: np.array([params.get(name, job.module().PARAMS.get(name))
                               for params in combinations]) for name in names}
    return evaluate_columns(data, job, columns, windows, keep_returns)


def evaluate_columns(data: pd.DataFrame, job: Job, columns: dict[str, np.ndarray],
                     windows: tuple[Window, ...], keep_returns: np.ndarray | None):
    """:func:`evaluate` in one compiled pass per column (:mod:`meridian.engine._fused`) when
    it can, for combinations given as one array per parameter (a sweep's task: no dict per
    combination): the module offers ``signals_batch`` (its signals over bars ×
    combinations), the settings are ones the fused pass covers and no combination varies a
    run setting other than the exit fractions. None otherwise (and when ``signals_batch``
    declines or an exit fraction is out of range), for the one-by-one path."""
    if not columns or not fusable(data, job):
        return None
    module = job.module()
    signals_batch = module.signals_batch
    settings_grid = [name for name in columns if name in SETTINGS and name not in module.PARAMS]
    if any(name not in EXITS for name in settings_grid):
        return None  # a grid over a run setting: one engine pass per value, the other path
    exits = {name: np.asarray(columns[name], dtype=float) for name in settings_grid}
    columns = {**{name: np.full(len(next(iter(columns.values()))), value)
                  for name, value in module.PARAMS.items() if name not in columns},
               **{name: column for name, column in columns.items() if name not in exits}}
    count = len(next(iter(columns.values())))
    errors: list[str | None] = [None] * count
    rules = getattr(module, "PARAM_RULES", None)
    if rules:
        broken = broken_rules(columns, rules, job.strategy)
        for i in np.flatnonzero(broken) if broken is not None else range(count):
            errors[i] = _skipped(module, {name: column[i].item() if hasattr(column[i], "item")
                                          else column[i] for name, column in columns.items()},
                                 job.strategy)
    live = np.array([i for i, error in enumerate(errors) if not error], dtype=np.int64)
    tables = [np.full((count, len(METRIC_NAMES)), np.nan) for _ in windows]
    kept_columns = np.flatnonzero(keep_returns) if keep_returns is not None else np.array([])
    if not len(live):
        return tables, errors, None
    if len(live) < count:
        columns = {name: column[live] for name, column in columns.items()}
        exits = {name: column[live] for name, column in exits.items()}
    try:
        targets = signals_batch(data, **accepted(signals_batch, columns))
    except Exception:  # noqa: BLE001 - the one-by-one path reports each combination's error
        return None
    if targets is None:
        return None
    targets = np.asfortranarray(targets, dtype=float)
    if targets.shape != (len(data), len(live)):
        return None
    low, high = targets.min(initial=0.0), targets.max(initial=0.0)  # NaN if any is NaN
    if np.isnan(low) or np.isnan(high):
        targets[np.isnan(targets)] = 0.0  # NaN: flat, as as_positions has it
        low, high = targets.min(initial=0.0), targets.max(initial=0.0)
    if not (low >= -1.0 and high <= 1.0):
        return None  # the one-by-one path names the bar
    keep = np.isin(live, kept_columns)
    kept = None
    for number, window in enumerate(windows):
        settings = job.settings
        if window.start or window.end:
            settings = settings.replace(start=window.start or settings.start,
                                        end=window.end or settings.end)
        try:
            table, returns = _fused.sweep_metrics(data, targets, settings, exits,
                                                  keep if number == 0 else None)
        except Exception:  # noqa: BLE001 - e.g. stop_loss=2: the one-by-one path says so
            return None
        tables[number][live] = table
        if returns is not None:
            kept = np.full((len(returns), len(kept_columns)), np.nan, np.float32)
            kept[:, np.searchsorted(kept_columns, live[keep])] = returns
    return tables, errors, kept


def run_window(data: pd.DataFrame | Markets, targets, settings: RunSettings, window: Window,
               exits: dict | None = None, levels: dict | None = None):
    """The engine on ``targets`` (bars × combinations) over ``window`` (else the settings'
    own dates), with the settings, per-combination exit fractions and price levels; over a
    universe, ``targets`` and ``levels`` are per market and the result is the account's."""
    if window.start or window.end:
        settings = settings.replace(start=window.start or settings.start,
                                    end=window.end or settings.end)
    if isinstance(data, Markets):
        from meridian.engine.portfolio import backtest_portfolio

        return backtest_portfolio(data.frames, targets, settings, contracts=data.contracts,
                                  levels=levels).engine
    return backtest_batch(data, targets, settings, exits=exits, levels=levels)


def _market_positions(data: Markets, module, params: dict) -> tuple[dict, dict]:
    """Each market's target exposure and price levels for strategy parameters ``params``."""
    return market_positions(module.signals, getattr(module, "exits", None), data.frames,
                            params)


def _evaluate_markets(data: Markets, job: Job, combinations: list[dict],
                      windows: tuple[Window, ...], keep_returns: np.ndarray | None):
    """:func:`evaluate` over a universe: one portfolio backtest per combination and window."""
    module = job.module()
    count = len(combinations)
    tables = [np.full((count, len(METRIC_NAMES)), np.nan) for _ in windows]
    errors: list[str | None] = [None] * count
    kept_columns = np.flatnonzero(keep_returns) if keep_returns is not None else np.array([])
    kept = None
    for column, params in enumerate(combinations):
        try:
            strategy_params, chosen = split_params(params, module.PARAMS)
            errors[column] = _skipped(module, strategy_params, job.strategy)
            if errors[column]:
                continue
            settings = job.settings.replace(**chosen)
            positions, levels = _market_positions(data, module, strategy_params)
            for number, window in enumerate(windows):
                result = run_window(data, positions, settings, window, None, levels)
                metrics = compute_metrics_batch(result)
                tables[number][column] = [metrics[name][0] for name in METRIC_NAMES]
                if number == 0 and column in kept_columns:
                    returns = returns_from_equity(result.sim.equity[:, 0],
                                                  settings.initial_capital).astype(np.float32)
                    if kept is None:
                        kept = np.full((len(returns), len(kept_columns)), np.nan, np.float32)
                    kept[:, np.searchsorted(kept_columns, column)] = returns
        except Exception as error:  # noqa: BLE001 - one bad combination must not stop a sweep
            errors[column] = f"{type(error).__name__}: {error}"
            for table in tables:
                table[column] = np.nan
    return tables, errors, kept


def positions(data: pd.DataFrame, job: Job, params: dict
              ) -> tuple[np.ndarray, RunSettings, dict, dict]:
    """One combination as :func:`evaluate` simulates it — targets (bars × 1), settings, exit
    fractions and price levels — for re-running a chosen combination on another window."""
    if isinstance(data, Markets):
        module = job.module()
        strategy_params, chosen = split_params(params, module.PARAMS)
        positions, levels = _market_positions(data, module, strategy_params)
        return positions, job.settings.replace(**chosen), {}, levels
    batch = _prepare(data, job, [params])
    if batch.errors[0]:
        raise ValueError(batch.errors[0])
    chosen = batch.settings[0]
    settings = job.settings.replace(**{k: v for k, v in chosen.items() if k not in EXITS})
    exits = {name: np.array([chosen[name]], dtype=float) for name in EXITS if name in chosen}
    return batch.targets, settings, exits, batch.levels


