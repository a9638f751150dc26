"""The Python API: ``run_backtest`` and ``quick_backtest``.

Everything else (notebooks, sweeps, the ``%%backtest`` magic) goes through the same path:
strategy module → ``signals`` → :func:`meridian.engine.backtest` → metrics.
"""

from __future__ import annotations

import math
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meridian.data import load_market_data, load_ohlcv
from meridian.engine import backtest, compute_metrics
from meridian.engine._trades import TRADE_COLUMNS
from meridian.engine.metrics import format_metrics
from meridian.exceptions import ParameterError
from meridian.parameters import (
    RUN_SETTING_RANGES,
    check_dates,
    check_ranges,
    coerce,
    validate_params,
)
from meridian.strategies import find_strategy, get_strategy

ENGINE_OPTIONS = {
    "commission": 0.0, "slippage": 0.0, "fill": "next_open", "risk_free_rate": 0.0,
    "start": "", "end": "",
}


def _series_to_dict(series: pd.Series) -> dict:
    return {"index": [ts.isoformat() for ts in series.index], "values": series.tolist()}


def _series_from_dict(payload: dict | None, name: str) -> pd.Series:
    payload = payload or {"index": [], "values": []}
    index = pd.DatetimeIndex(pd.to_datetime(payload["index"]), name="Date")
    return pd.Series(payload["values"], index=index, name=name, dtype=float)


def _json_float(value: float) -> float | None:
    """Floats for JSON: NaN (an undefined metric) becomes null."""
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


@dataclass
class BacktestResult:
    """One backtest, as the registry, the reports and the dashboard see it."""

    run_id: str
    timestamp: str
    strategy_name: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    equity: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    drawdown: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    trades: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRADE_COLUMNS))
    logs: list[str] = field(default_factory=list)
    status: str = "success"
    error: str | None = None

    def to_dict(self) -> dict:
        """A JSON-serializable dict (timestamps as ISO 8601 strings, undefined metrics as null)."""
        trades = self.trades.copy()
        for column in ("entry_time", "exit_time"):
            if column in trades:
                trades[column] = [ts.isoformat() for ts in trades[column]]
        records = [
            {k: (_json_float(v) if isinstance(v, float) else v) for k, v in row.items()}
            for row in trades.to_dict("records")
        ]
        for row in records:
            for key, value in row.items():
                if isinstance(value, np.integer):
                    row[key] = int(value)
        return {
            "run_id": self.run_id,
            "timestamp": self.timestamp,
            "strategy_name": self.strategy_name,
            "params": dict(self.params),
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "equity": _series_to_dict(self.equity),
            "drawdown": _series_to_dict(self.drawdown),
            "trades": records,
            "logs": list(self.logs),
            "status": self.status,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> BacktestResult:
        """The inverse of :meth:`to_dict`."""
        trades = pd.DataFrame(payload.get("trades") or [], columns=TRADE_COLUMNS)
        for column in ("entry_time", "exit_time"):
            trades[column] = pd.to_datetime(trades[column])
        return cls(
            run_id=payload["run_id"],
            timestamp=payload["timestamp"],
            strategy_name=payload["strategy_name"],
            params=dict(payload.get("params") or {}),
            metrics={k: (math.nan if v is None else float(v))
                     for k, v in (payload.get("metrics") or {}).items()},
            equity=_series_from_dict(payload.get("equity"), "equity"),
            drawdown=_series_from_dict(payload.get("drawdown"), "drawdown"),
            trades=trades,
            logs=list(payload.get("logs") or []),
            status=payload.get("status", "success"),
            error=payload.get("error"),
        )

    def summary(self) -> str:
        """Metrics as aligned text lines, for terminals."""
        head = f"{self.strategy_name} {self.params}  [{self.status}]  run {self.run_id}"
        if self.status != "success":
            return f"{head}\n  error: {self.error}"
        return f"{head}\n{format_metrics(self.metrics)}"


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
) -> BacktestResult:
    """Backtest a registered strategy and measure it.

    ``params`` override the strategy's ``PARAMS`` (unknown names and wrong types raise
    :class:`~meridian.exceptions.ParameterError` before anything runs). ``engine_options`` are
    ``commission``, ``slippage``, ``fill``, ``risk_free_rate`` and the trading window
    ``start`` / ``end`` (signals still see the bars before ``start``). An exception raised by the
    strategy or the engine does not propagate: it is recorded in ``status="failed"``,
    ``error`` and ``logs``, so a failed run can be saved like any other.
    """
    name = find_strategy(strategy_name).name  # "FLD" is fld: record the module's own name
    module = get_strategy(name)
    merged = validate_params(module.PARAMS, params, owner=name)
    check_ranges(merged, getattr(module, "PARAM_RANGES", {}), name)
    return backtest_signals(module.signals, merged, strategy_name=name,
                            initial_capital=initial_capital, data=data, **engine_options)


def backtest_signals(
    signals: Callable[..., Any],
    params: dict[str, Any],
    *,
    strategy_name: str,
    initial_capital: float = 100_000,
    data: pd.DataFrame | str | Path | None = None,
    **engine_options: Any,
) -> BacktestResult:
    """``signals(data, **params)`` → engine → metrics: the path every backtest takes, whether
    the function comes from a strategy module or from a notebook cell (``%%backtest``)."""
    options = _engine_options(engine_options)
    capital = coerce("initial_capital", initial_capital, 100_000.0, "the engine")
    check_ranges({**options, "initial_capital": capital}, RUN_SETTING_RANGES, "the engine")
    check_dates(options)
    result = BacktestResult(
        run_id=str(uuid.uuid4()),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        strategy_name=strategy_name,
        params=dict(params),
    )
    frame = resolve_data(data)
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
    except Exception as error:  # noqa: BLE001 - a failing strategy is a result, not a crash
        result.status = "failed"
        result.error = f"{type(error).__name__}: {error}"
        result.logs.append(traceback.format_exc())
        return result
    result.metrics = compute_metrics(outcome, risk_free_rate=options["risk_free_rate"])
    result.equity = outcome.equity
    result.drawdown = outcome.drawdown
    result.trades = outcome.trades
    return result


def quick_backtest(strategy_name: str, **params: Any) -> BacktestResult:
    """``run_backtest`` on the bundled sample with ``params``, printing a metrics summary."""
    result = run_backtest(strategy_name, params)
    print(result.summary())
    return result
