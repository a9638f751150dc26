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
}
RUN_ID_VARIABLE = "MERIDIAN_RUN_ID"
"""Set by ``meridian run`` for its kernel: a backtest made inside the notebook is that run."""


def _engine_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(ENGINE_OPTIONS))
    if unknown:
        raise ParameterError(
            f"unknown engine option {unknown[0]!r}; valid options: {', '.join(ENGINE_OPTIONS)}"
        )
    return {name: coerce(name, options.get(name, default), default, "the engine")
            for name, default in ENGINE_OPTIONS.items()}


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
        settings={"initial_capital": capital, **options},
        data=data_provenance(frame), environment=environment(), prices=frame,
    )
    result.logs.append(f"{len(frame)} bars from {frame.index[0]} to {frame.index[-1]}")
    if "COT_Index" not in frame.columns:
        result.logs.append("the data has no COT_Index column: COT filter off")
    try:
        position = signals(frame, **params)
        outcome = backtest(
            frame, position, initial_capital=capital, commission=options["commission"],
            slippage=options["slippage"], fill=options["fill"], start=options["start"],
            end=options["end"],
        )
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
                      data: pd.DataFrame | None = None, strategy_name: str | None = None
                      ) -> RunRecord:
    """The backtest of a strategy notebook, from its own variables: ``signals``' arguments and
    the run settings (``initial_capital``, ``commission``, ``slippage``, ``start``, ``end``)
    are read from ``namespace`` (pass ``globals()``), so the parameters cell is the only list
    of parameters a notebook has. Inside ``meridian run`` the result is that run."""
    names = list(inspect.signature(signals).parameters)[1:]
    params = {name: namespace[name] for name in names if name in namespace}
    options = {name: namespace[name] for name in ENGINE_OPTIONS if name in namespace}
    name = strategy_name or os.environ.get("MERIDIAN_STRATEGY") or "notebook"
    return backtest_signals(signals, params, strategy_name=name,
                            initial_capital=namespace.get("initial_capital", 100_000.0),
                            data=data, kind="notebook", raise_errors=True, **options)


def quick_backtest(strategy_name: str, **params: Any) -> RunRecord:
    """``run_backtest`` on the default data with ``params``, printing a metrics summary."""
    result = run_backtest(strategy_name, params)
    print(result.summary())
    return result
