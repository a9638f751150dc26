"""Evaluating a batch of parameter combinations in one vectorized backtest.

Each combination calls the strategy module's ``signals`` (the extracted notebook code) with
its parameters, and its exits (``stop_loss``, ``take_profit``, ``trailing_stop``) go to the
engine; the positions become the columns of a bars × combinations matrix that the engine
simulates and measures in one pass (:func:`~meridian.engine.backtest_batch`,
:func:`~meridian.engine.compute_metrics_batch`) — the same functions ``run_backtest`` uses, so
every row equals a single backtest with those parameters, float for float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from meridian.engine import METRIC_NAMES, as_positions, backtest_batch, compute_metrics_batch
from meridian.engine.metrics import returns_from_equity
from meridian.strategies import StrategySource, get_strategy, load_module

EXIT_OPTIONS = {"stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0}
"""Engine exits a grid may sweep beside the strategy's parameters (0 = off), one fraction per
combination: ``--grid stop_loss=0.02,0.05,0.1``."""


@dataclass(frozen=True)
class Settings:
    """Everything but the parameters: the same for every combination of a sweep."""

    strategy: str
    source: StrategySource | None = None  # where the module lives (workers load it by path)
    initial_capital: float = 100_000.0
    commission: float = 0.0
    slippage: float = 0.0
    fill: str = "next_open"
    risk_free_rate: float = 0.0
    sample_stride: int = 1  # every stride-th combination's returns are kept (for PBO)
    sample_size: int = 0


@dataclass(frozen=True)
class Window:
    """Trading window (inclusive dates, None = open-ended)."""

    start: str | None = None
    end: str | None = None


def evaluate(
    data: pd.DataFrame, settings: Settings, combinations: list[dict], windows: tuple[Window, ...],
    keep_returns: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[str | None], np.ndarray | None]:
    """Metrics (combinations × METRIC_NAMES, one matrix per window), per-combination errors,
    and the bar returns on the first window of the combinations ``keep_returns`` marks
    (float32, bars × marked; for the overfitting statistics), or None.

    A combination whose ``signals`` raises gets NaN metrics and its error; the others go on.
    """
    module = load_module(settings.source) if settings.source else get_strategy(settings.strategy)
    targets = np.zeros((len(data), len(combinations)), order="F")
    errors: list[str | None] = [None] * len(combinations)
    for column, params in enumerate(combinations):
        try:
            signal_params = {k: v for k, v in params.items() if k not in EXIT_OPTIONS}
            targets[:, column] = as_positions(module.signals(data, **signal_params), data.index)
        except Exception as error:  # noqa: BLE001 - one bad combination must not stop a sweep
            errors[column] = f"{type(error).__name__}: {error}"
    exits = {name: np.array([params.get(name, 0.0) for params in combinations], dtype=float)
             for name in EXIT_OPTIONS if any(name in params for params in combinations)}
    tables = []
    kept = None
    for number, window in enumerate(windows):
        result = run_window(data, targets, settings, window, exits)
        metrics = compute_metrics_batch(result, risk_free_rate=settings.risk_free_rate)
        table = np.column_stack([metrics[name] for name in METRIC_NAMES])
        failed = [i for i, error in enumerate(errors) if error]
        table[failed] = np.nan
        tables.append(table)
        if number == 0 and keep_returns is not None and keep_returns.any():
            kept = returns_from_equity(result.sim.equity[:, keep_returns],
                                       settings.initial_capital).astype(np.float32)
    return tables, errors, kept


def run_window(data: pd.DataFrame, targets: np.ndarray, settings: Settings, window: Window,
               exits: dict | None = None):
    """The engine on ``targets`` (bars × combinations) over ``window``, with the settings."""
    return backtest_batch(
        data, targets, initial_capital=settings.initial_capital,
        commission=settings.commission, slippage=settings.slippage, fill=settings.fill,
        start=window.start, end=window.end, **(exits or {}),
    )


def positions(data: pd.DataFrame, settings: Settings, params: dict) -> tuple[np.ndarray, dict]:
    """One combination's target positions (bars × 1) and its exits, as :func:`evaluate` makes
    them (for re-running a chosen combination on another window)."""
    module = load_module(settings.source) if settings.source else get_strategy(settings.strategy)
    signal_params = {k: v for k, v in params.items() if k not in EXIT_OPTIONS}
    target = as_positions(module.signals(data, **signal_params), data.index)[:, None]
    exits = {name: np.array([params[name]], dtype=float) for name in EXIT_OPTIONS
             if name in params}
    return np.asfortranarray(target), exits
