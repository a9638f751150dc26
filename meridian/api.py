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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from meridian._files import file_sha256
from meridian.data import resolve_data
from meridian.engine import backtest, compute_metrics
from meridian.engine.backtest import _window_mask
from meridian.parameters import check_windows
from meridian.record import RunRecord, data_provenance, environment, markets_provenance
from meridian.settings import NAMES as SETTING_NAMES
from meridian.settings import RunSettings
from meridian.strategies import (
    accepted,
    exit_levels,
    find_strategy,
    get_strategy,
    market_positions,
    strategy_parameters,
)
from meridian.tearsheet import benchmark_provenance

BacktestResult = RunRecord
"""What every backtest returns (the seed's name for :class:`~meridian.record.RunRecord`)."""

UNIVERSE_VARIABLE = "MERIDIAN_UNIVERSE"
"""Set by ``meridian run --universe`` for its kernel: the universe file its backtest trades."""
RUN_ID_VARIABLE = "MERIDIAN_RUN_ID"
"""Set by ``meridian run`` for its kernel: a backtest made inside the notebook is that run."""


def _settings(settings: RunSettings | Mapping[str, Any] | None, initial_capital: Any,
              options: dict[str, Any]) -> RunSettings:
    """The run's :class:`RunSettings`: ``settings``, then ``initial_capital`` and the keyword
    options on top (checked: unknown names, types, ranges, choices, dates)."""
    if initial_capital is not None:
        options = {**options, "initial_capital": initial_capital}
    return RunSettings.of(settings, **options)


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
                              exits=getattr(module, "exits", None),
                              windows=getattr(module, "WINDOWS", ()), **engine_options)
    return _from_module(result, module, source, merged)


def _from_module(result: RunRecord, module, source, merged: dict[str, Any]) -> RunRecord:
    """A strategy module's run: the parameters that differ from its ``PARAMS`` and its code."""
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
    windows: Sequence[str] = (),
    **engine_options: Any,
) -> RunRecord:
    """``signals(data, **params)`` → engine → metrics: the path every backtest takes, whether
    the function comes from a strategy module or from a notebook cell (``%%backtest``).
    ``exits(data, **params)``, when given, returns price levels (``{"stop_loss": Series}``)
    that replace those settings. Each function gets the ``params`` it accepts. ``windows``
    names the parameters counted in bars (the strategy's ``WINDOWS``): one longer than the data
    is a ParameterError (:func:`~meridian.parameters.check_windows`). An exception in
    the strategy or the engine becomes a failed result, unless ``raise_errors`` (a notebook's
    cell should fail where the error is)."""
    run = _settings(settings, initial_capital, engine_options)
    frame = resolve_data(data)
    warnings = check_windows(params, windows, len(frame), strategy_name)
    if run.start or run.end:  # a window with no bars is bad input, not a failed run
        _window_mask(frame, run.start or None, run.end or None)
    benchmark = benchmark_provenance(run.benchmark) if run.benchmark else None
    result = RunRecord(
        run_id=os.environ.get(RUN_ID_VARIABLE) or str(uuid.uuid4()),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=strategy_name, params=dict(params), kind=kind,
        settings=run.recorded(), data=data_provenance(frame, run.periods(frame.index)),
        environment=environment(),
        prices=frame,
    )
    result.logs.append(f"{len(frame)} bars from {frame.index[0]} to {frame.index[-1]}")
    result.logs += warnings
    if benchmark:
        result.data["benchmark"] = benchmark
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


def run_portfolio(
    strategy_name: str,
    universe: str | Path | Any,
    params: dict[str, Any] | None = None,
    settings: RunSettings | Mapping[str, Any] | None = None,
    **engine_options: Any,
) -> RunRecord:
    """Backtest a strategy module on every market of ``universe`` (a name from the project's
    ``universes/``, a ``.toml`` path or a :class:`~meridian.universe.Universe`) with one
    account: each market gets the strategy's target exposure from its own bars (same
    ``params``), and the universe's sizing turns them into positions from one equity (see
    :mod:`meridian.engine.portfolio`). Settings: ``settings`` (default: the defaults), the
    universe file's account settings on top, then ``engine_options`` (any run setting, e.g.
    ``initial_capital=1e6``, ``sizing="risk_parity"``). The record has kind ``portfolio``,
    trades with a ``market`` column, ``markets`` (per-market results), ``universe``
    (name, file, SHA-256) and ``portfolio`` (positions, P&L and costs per bar and market).
    A universe of one market with ``equal_weight`` equals :func:`run_backtest` on it."""
    source = find_strategy(strategy_name)
    module = get_strategy(source.name)
    merged = strategy_parameters(module, params, source.name)
    result = portfolio_signals(module.signals, merged, universe, strategy_name=source.name,
                               settings=settings, exits=getattr(module, "exits", None),
                               windows=getattr(module, "WINDOWS", ()), **engine_options)
    return _from_module(result, module, source, merged)


def portfolio_signals(
    signals: Callable[..., Any],
    params: dict[str, Any],
    universe: str | Path | Any,
    *,
    strategy_name: str,
    raise_errors: bool = False,
    settings: RunSettings | Mapping[str, Any] | None = None,
    exits: Callable[..., Any] | None = None,
    windows: Sequence[str] = (),
    **engine_options: Any,
) -> RunRecord:
    """:func:`backtest_signals` for a universe: ``signals`` (and ``exits``) on each market's
    bars, one account for all (see :func:`run_portfolio`). Bad universe files, bad
    settings and ``windows`` longer than the longest market raise before anything runs; a
    failing strategy is a failed result unless ``raise_errors``."""
    from meridian.engine.portfolio import backtest_portfolio
    from meridian.universe import load_universe

    chosen = load_universe(universe)
    base = None if settings is None else RunSettings.of(settings)
    run = chosen.settings(base, **engine_options)
    frames = chosen.frames()
    warnings = check_windows(params, windows, max(map(len, frames.values())), strategy_name)
    result = RunRecord(
        run_id=os.environ.get(RUN_ID_VARIABLE) or str(uuid.uuid4()),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=strategy_name, params=dict(params), kind="portfolio",
        settings=run.recorded(), environment=environment(),
        data=markets_provenance(frames),
        universe=chosen.provenance(),
    )
    result.logs.append(f"universe {chosen.name}: {len(frames)} markets ({', '.join(frames)})")
    result.logs += warnings
    try:
        positions, levels = market_positions(signals, exits, frames, params)
        outcome = backtest_portfolio(frames, positions, run, contracts=chosen.contracts(),
                                     levels=levels)
        result.metrics = compute_metrics(outcome.engine)
    except Exception as error:  # noqa: BLE001 - a failing strategy is a result, not a crash
        if raise_errors:
            raise
        return result.fail(error)
    result.data["periods_per_year"] = run.periods(outcome.engine.index)  # the account's
    result.equity, result.drawdown = outcome.equity, outcome.drawdown
    result.trades, result.portfolio = outcome.trades, outcome
    summary = outcome.market_summary()
    result.markets = {name: {key: (None if pd.isna(value) else float(value))
                             for key, value in row.items()}
                      for name, row in summary.iterrows()}
    cut = {name: n for name, n in outcome.margin_blocked.items() if n}
    if cut:
        result.logs.append("margin limited orders: " + ", ".join(f"{name} {n}"
                                                                 for name, n in cut.items()))
    return result


def notebook_backtest(signals: Callable[..., Any], namespace: Mapping[str, Any],
                      data: pd.DataFrame | None = None, strategy_name: str | None = None,
                      exits: Callable[..., Any] | None = None, **settings: Any) -> RunRecord:
    """The backtest of a strategy notebook, from its own variables: the arguments of
    ``signals`` (and of ``exits``, the price levels a strategy exits at) and the run settings
    (every :class:`~meridian.settings.RunSettings` name the notebook defines: capital,
    costs, window, exits, contract, sizing…) are read from ``namespace`` (pass ``globals()``),
    so the parameters cell is the only list of parameters a notebook has; ``settings``
    override them. A ``universe`` variable (or ``meridian run --universe``) trades every
    market of that universe with one account (:func:`run_portfolio`). Inside ``meridian run``
    the result is that run."""
    names = [name for function in (signals, exits) if function is not None
             for name in list(inspect.signature(function).parameters)[1:]]
    params = {name: namespace[name] for name in names if name in namespace}
    options = {name: namespace[name] for name in SETTING_NAMES if name in namespace}
    if "benchmark" in options:  # the setting is a file; a notebook's own `benchmark` Series
        given = options.pop("benchmark")  # (a common name) is its business, not the run's
        if isinstance(given, str | os.PathLike):
            options["benchmark"] = os.fspath(given)
    options.update(settings)  # e.g. a price level as the stop
    name = strategy_name or os.environ.get("MERIDIAN_STRATEGY") or "notebook"
    windows = namespace.get("WINDOWS") or ()  # the export cell's, as a module has them
    universe = os.environ.get(UNIVERSE_VARIABLE) or namespace.get("universe")
    if universe:  # --universe, or the notebook's own: the file's settings over the notebook's
        given = set(os.environ.get("MERIDIAN_CHANGED", "").split(",")) | set(settings)
        base = {key: value for key, value in options.items() if key not in given}
        return portfolio_signals(signals, params, universe, strategy_name=name,
                                 raise_errors=True, exits=exits, settings=base,
                                 windows=windows,
                                 **{key: options[key] for key in options if key in given})
    return backtest_signals(signals, params, strategy_name=name, data=data, kind="notebook",
                            raise_errors=True, exits=exits, windows=windows, **options)


def quick_backtest(strategy_name: str, **params: Any) -> RunRecord:
    """``run_backtest`` on the default data with ``params``, printing a metrics summary."""
    result = run_backtest(strategy_name, params)
    print(result.summary())
    return result
