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


@dataclass(frozen=True)
class Window:
    """Trading window (inclusive dates, None = open-ended)."""

    start: str | None = None
    end: str | None = None


def evaluate(
    data: pd.DataFrame, settings: Settings, combinations: list[dict], windows: tuple[Window, ...]
) -> tuple[list[np.ndarray], list[str | None]]:
    """Metrics (combinations × METRIC_NAMES, one matrix per window) and per-combination errors.

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
    for window in windows:
        result = backtest_batch(
            data, targets, initial_capital=settings.initial_capital,
            commission=settings.commission, slippage=settings.slippage, fill=settings.fill,
            start=window.start, end=window.end, **exits,
        )
        metrics = compute_metrics_batch(result, risk_free_rate=settings.risk_free_rate)
        table = np.column_stack([metrics[name] for name in METRIC_NAMES])
        failed = [i for i, error in enumerate(errors) if error]
        table[failed] = np.nan
        tables.append(table)
    return tables, errors
