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
from meridian.exceptions import ParameterError
from meridian.parameters import (
    RUN_SETTING_RANGES,
    check_dates,
    check_ranges,
    coerce,
    validate_params,
)
from meridian.record import RunRecord, data_provenance, environment
from meridian.strategies import find_strategy, get_strategy

BacktestResult = RunRecord
"""What every backtest returns (the seed's name for :class:`~meridian.record.RunRecord`)."""

ENGINE_OPTIONS = {
    "commission": 0.0, "slippage": 0.0, "fill": "next_open", "risk_free_rate": 0.0,
    "start": "", "end": "",
    "stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0,
    "multiplier": 1.0, "tick_size": 0.0, "commission_per_contract": 0.0, "margin": 0.0,
    "sizing": "fixed_fraction", "target_volatility": 0.0, "max_leverage": 1.0,
    "financing_rate": 0.0,
}
"""Run settings every backtest accepts (0 or "" = off), as notebooks name them too. A price
level (``pd.Series``) is also accepted for ``stop_loss`` / ``take_profit``, and an
:class:`~meridian.engine.Instrument` as ``instrument`` instead of the four contract fields."""
LEVEL_OPTIONS = ("stop_loss", "take_profit")
INSTRUMENT_FIELDS = ("multiplier", "tick_size", "commission_per_contract", "margin")
RUN_ID_VARIABLE = "MERIDIAN_RUN_ID"
"""Set by ``meridian run`` for its kernel: a backtest made inside the notebook is that run."""


def _engine_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(ENGINE_OPTIONS) - {"instrument"})
    if unknown:
        raise ParameterError(
            f"unknown engine option {unknown[0]!r}; valid options: {', '.join(ENGINE_OPTIONS)}"
        )
    chosen = {}
    for name, default in ENGINE_OPTIONS.items():
        value = options.get(name, default)
        chosen[name] = value if (name in LEVEL_OPTIONS and isinstance(value, pd.Series)) \
            else coerce(name, value, default, "the engine")
    instrument = options.get("instrument")
    if instrument is not None:
        chosen.update({name: getattr(instrument, name) or 0.0 for name in INSTRUMENT_FIELDS})
    return chosen


def _recorded(options: dict[str, Any]) -> dict[str, Any]:
    """The settings a run records: costs and fill always, the others when not at their
    default (a price-level stop is recorded as such: its values are in the notebook)."""
    recorded = {}
    for name, value in options.items():
        if isinstance(value, pd.Series):
            recorded[name] = f"price level ({value.name or 'series'})"
        elif value != ENGINE_OPTIONS[name] or name in ("commission", "slippage", "fill"):
            recorded[name] = value
    return recorded


def engine_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`meridian.engine.backtest` for checked run settings: 0 and
    "" mean off, the contract fields become an :class:`~meridian.engine.Instrument`."""
    from meridian.engine import Instrument

    def off(value):
        return None if (not isinstance(value, pd.Series) and not value) else value

    contract = {name: options[name] for name in INSTRUMENT_FIELDS}
    instrument = None
    if contract != {name: ENGINE_OPTIONS[name] for name in INSTRUMENT_FIELDS}:
        instrument = Instrument(contract["multiplier"], contract["tick_size"],
                               contract["commission_per_contract"], contract["margin"] or None)
    return {
        "commission": options["commission"], "slippage": options["slippage"],
        "fill": options["fill"], "start": options["start"], "end": options["end"],
        "stop_loss": off(options["stop_loss"]), "take_profit": off(options["take_profit"]),
        "trailing_stop": off(options["trailing_stop"]), "instrument": instrument,
        "sizing": options["sizing"], "target_volatility": off(options["target_volatility"]),
        "max_leverage": options["max_leverage"], "financing_rate": options["financing_rate"],
    }


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
    initial_capital: float = 100_000,
    data: pd.DataFrame | str | Path | None = None,
    **engine_options: Any,
) -> RunRecord:
    """Backtest a strategy module (the project's, else a built-in; any case) and measure it.

    ``params`` override the strategy's ``PARAMS`` (unknown names, wrong types and values
    outside its ``PARAM_RANGES`` raise :class:`~meridian.exceptions.ParameterError` before
    anything runs). ``engine_options`` are ``commission``, ``slippage``, ``fill``,
    ``risk_free_rate`` and the trading window ``start`` / ``end`` (signals still see the bars
    before ``start``). An exception raised by the strategy or the engine does not propagate:
    it is recorded in ``status="failed"``, ``error`` and ``traceback``, so a failed run can be
    saved like any other.
    """
    source = find_strategy(strategy_name)  # "FLD" is fld: record the module's own name
    module = get_strategy(source.name)
    merged = validate_params(module.PARAMS, params, owner=source.name)
    check_ranges(merged, getattr(module, "PARAM_RANGES", {}), source.name)
    result = backtest_signals(module.signals, merged, strategy_name=source.name,
                              initial_capital=initial_capital, data=data, **engine_options)
    result.changed = [name for name, value in merged.items() if module.PARAMS[name] != value]
    result.code = {"module": str(source.path), "module_sha256": file_sha256(source.path),
                   "origin": source.origin}
    return result


def backtest_signals(
    signals: Callable[..., Any],
    params: dict[str, Any],
    *,
    strategy_name: str,
    initial_capital: float = 100_000,
    data: pd.DataFrame | str | Path | None = None,
    kind: str = "api",
    raise_errors: bool = False,
    **engine_options: Any,
) -> RunRecord:
    """``signals(data, **params)`` → engine → metrics: the path every backtest takes, whether
    the function comes from a strategy module or from a notebook cell (``%%backtest``). An
    exception in the strategy or the engine becomes a failed result, unless ``raise_errors``
    (a notebook's cell should fail where the error is)."""
    options = _engine_options(engine_options)
    capital = coerce("initial_capital", initial_capital, 100_000.0, "the engine")
    check_ranges({**options, "initial_capital": capital}, RUN_SETTING_RANGES, "the engine")
    check_dates(options)
    frame = resolve_data(data)
    result = RunRecord(
        run_id=os.environ.get(RUN_ID_VARIABLE) or str(uuid.uuid4()),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=strategy_name, params=dict(params), kind=kind,
        settings={"initial_capital": capital, **_recorded(options)},
        data=data_provenance(frame), environment=environment(), prices=frame,
    )
    result.logs.append(f"{len(frame)} bars from {frame.index[0]} to {frame.index[-1]}")
    if "COT_Index" not in frame.columns:
        result.logs.append("the data has no COT_Index column: COT filter off")
    try:
        position = signals(frame, **params)
        outcome = backtest(frame, position, initial_capital=capital,
                           **engine_arguments(options))
        result.metrics = compute_metrics(outcome, risk_free_rate=options["risk_free_rate"])
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
                      **settings: Any) -> RunRecord:
    """The backtest of a strategy notebook, from its own variables: ``signals``' arguments and
    the run settings (``initial_capital`` and :data:`ENGINE_OPTIONS`: costs, window, exits,
    contract, sizing) are read from ``namespace`` (pass ``globals()``), so the parameters cell
    is the only list of parameters a notebook has; ``settings`` override them. Inside
    ``meridian run`` the result is that run."""
    names = list(inspect.signature(signals).parameters)[1:]
    params = {name: namespace[name] for name in names if name in namespace}
    options = {name: namespace[name] for name in ENGINE_OPTIONS if name in namespace}
    options.update(settings)  # e.g. a price level as the stop (the FLD line)
    name = strategy_name or os.environ.get("MERIDIAN_STRATEGY") or "notebook"
    return backtest_signals(signals, params, strategy_name=name,
                            initial_capital=namespace.get("initial_capital", 100_000.0),
                            data=data, kind="notebook", raise_errors=True, **options)


def quick_backtest(strategy_name: str, **params: Any) -> RunRecord:
    """``run_backtest`` on the default data with ``params``, printing a metrics summary."""
    result = run_backtest(strategy_name, params)
    print(result.summary())
    return result
