"""The Python API: ``run_backtest``, ``quick_backtest`` and ``backtest_signals``.

Everything else (notebooks, sweeps, the ``%%backtest`` magic, ``meridian rerun``) goes through
the same path: strategy module → ``signals`` → :func:`meridian.engine.backtest` → metrics, and
the result is a :class:`~meridian.record.RunRecord` (``BacktestResult``) carrying its own
provenance, ready for ``save_run(result.to_dict())``.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from meridian._files import file_sha256
from meridian.data import load_market_data, load_ohlcv
from meridian.engine import backtest, compute_metrics
from meridian.record import RunRecord, data_provenance, environment
from meridian.settings import NAMES as SETTING_NAMES
from meridian.settings import RunSettings
from meridian.strategies import (
    accepted,
    exit_levels,
    find_strategy,
    get_strategy,
    strategy_parameters,
)

BacktestResult = RunRecord
"""What every backtest returns (the seed's name for :class:`~meridian.record.RunRecord`)."""

RUN_ID_VARIABLE = "MERIDIAN_RUN_ID"
"""Set by ``meridian run`` for its kernel: a backtest made inside the notebook is that run."""


def _settings(settings: RunSettings | Mapping[str, Any] | None, initial_capital: Any,
              options: dict[str, Any]) -> RunSettings:
    """The run's :class:`RunSettings`: ``settings``, then ``initial_capital`` and the keyword
    options on top (checked: unknown names, types, ranges, choices, dates)."""
    if initial_capital is not None:
        options = {**options, "initial_capital": initial_capital}
    return RunSettings.of(settings, **options)


def resolve_data(data: pd.DataFrame | str | Path | None) -> pd.DataFrame:
    """A frame as given; a path → ``load_ohlcv``; ``None`` → the project's default data
    (``[tool.meridian] data``, with its ``cot``) or else the bundled synthetic sample."""
    if data is None or (isinstance(data, str) and not data):
        return load_market_data()[0]
    if isinstance(data, str | Path):
        return load_ohlcv(data)
    return data


def run_backtest(
    strategy_name: str,
    params: dict[str, Any] | None = None,
    initial_capital: float | None = None,
    data: pd.DataFrame | str | Path | None = None,
    settings: RunSettings | Mapping[str, Any] | None = None,
    **engine_options: Any,
) -> RunRecord:
    """Backtest a strategy module (the project's, else a built-in; any case) and measure it.

    ``params`` override the strategy's ``PARAMS`` (unknown names, wrong types and values
    outside its ``PARAM_RANGES`` raise :class:`~meridian.exceptions.ParameterError` before
    anything runs). The run settings are ``settings`` (a
    :class:`~meridian.settings.RunSettings` or a mapping) with ``initial_capital`` and
    ``engine_options`` on top — any setting by name: ``commission``, ``fill``, ``start``,
    ``stop_loss``, ``multiplier``, ``sizing``, ``target_volatility``… (defaults otherwise, not
    the notebook's: ``meridian sweep`` and ``meridian backtest`` start from the module's
    ``SETTINGS``). A module's ``exits(data, **params)`` price levels (the FLD line as the stop)
    apply as in the notebook. An exception raised by the strategy or the engine does not
    propagate: it is recorded in ``status="failed"``, ``error`` and ``traceback``, so a failed
    run can be saved like any other.
    """
    source = find_strategy(strategy_name)  # "FLD" is fld: record the module's own name
    module = get_strategy(source.name)
    merged = strategy_parameters(module, params, source.name)
    result = backtest_signals(module.signals, merged, strategy_name=source.name,
                              initial_capital=initial_capital, data=data, settings=settings,
                              exits=getattr(module, "exits", None), **engine_options)
    result.changed = [name for name, value in merged.items() if module.PARAMS[name] != value]
    result.code = {"module": str(source.path), "module_sha256": file_sha256(source.path),
                   "origin": source.origin}
    return result


def backtest_signals(
    signals: Callable[..., Any],
    params: dict[str, Any],
    *,
    strategy_name: str,
    initial_capital: float | None = None,
    data: pd.DataFrame | str | Path | None = None,
    kind: str = "api",
    raise_errors: bool = False,
    settings: RunSettings | Mapping[str, Any] | None = None,
    exits: Callable[..., Any] | None = None,
    **engine_options: Any,
) -> RunRecord:
    """``signals(data, **params)`` → engine → metrics: the path every backtest takes, whether
    the function comes from a strategy module or from a notebook cell (``%%backtest``).
    ``exits(data, **params)``, when given, returns price levels (``{"stop_loss": Series}``)
    that replace those settings. Each function gets the ``params`` it accepts. An exception in
    the strategy or the engine becomes a failed result, unless ``raise_errors`` (a notebook's
    cell should fail where the error is)."""
    run = _settings(settings, initial_capital, engine_options)
    frame = resolve_data(data)
    result = RunRecord(
        run_id=os.environ.get(RUN_ID_VARIABLE) or str(uuid.uuid4()),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=strategy_name, params=dict(params), kind=kind,
        settings=run.recorded(), data=data_provenance(frame), environment=environment(),
        prices=frame,
    )
    result.logs.append(f"{len(frame)} bars from {frame.index[0]} to {frame.index[-1]}")
    if "COT_Index" not in frame.columns:
        result.logs.append("the data has no COT_Index column: COT filter off")
    try:
        position = signals(frame, **accepted(signals, params))
        if exits is not None:
            run = run.replace(**exit_levels(exits, frame, params))
            result.settings = run.recorded()
        outcome = backtest(frame, position, run)
        result.metrics = compute_metrics(outcome)
    except Exception as error:  # noqa: BLE001 - a failing strategy is a result, not a crash
        if raise_errors:
            raise
        return result.fail(error)
    result.equity = outcome.equity
    result.drawdown = outcome.drawdown
    result.trades = outcome.trades
    if result.metrics.get("num_trades") == 0:
        result.logs.append("warning: no trades (is a window or offset longer than the data?)")
    return result


def notebook_backtest(signals: Callable[..., Any], namespace: Mapping[str, Any],
                      data: pd.DataFrame | None = None, strategy_name: str | None = None,
                      exits: Callable[..., Any] | None = None, **settings: Any) -> RunRecord:
    """The backtest of a strategy notebook, from its own variables: the arguments of
    ``signals`` (and of ``exits``, the price levels a strategy exits at) and the run settings
    (every :class:`~meridian.settings.RunSettings` name the notebook defines: capital,
    costs, window, exits, contract, sizing…) are read from ``namespace`` (pass ``globals()``),
    so the parameters cell is the only list of parameters a notebook has; ``settings``
    override them. Inside ``meridian run`` the result is that run."""
    names = [name for function in (signals, exits) if function is not None
             for name in list(inspect.signature(function).parameters)[1:]]
    params = {name: namespace[name] for name in names if name in namespace}
    options = {name: namespace[name] for name in SETTING_NAMES if name in namespace}
    options.update(settings)  # e.g. a price level as the stop
    name = strategy_name or os.environ.get("MERIDIAN_STRATEGY") or "notebook"
    return backtest_signals(signals, params, strategy_name=name, data=data, kind="notebook",
                            raise_errors=True, exits=exits, **options)


def quick_backtest(strategy_name: str, **params: Any) -> RunRecord:
    """``run_backtest`` on the default data with ``params``, printing a metrics summary."""
    result = run_backtest(strategy_name, params)
    print(result.summary())
    return result
