"""``backtest(data, position)``: the one way Meridian turns target exposures into results."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from meridian.engine._simulate import Simulation, simulate
from meridian.engine._trades import TradeArrays, closed_trades
from meridian.engine.metrics import drawdown, returns_from_equity
from meridian.exceptions import EngineError

FILLS = ("next_open", "close")


@dataclass(frozen=True, eq=False)
class EngineResult:
    """What a backtest produced. Series are indexed like the input data.

    ``equity`` is marked at each bar's close; ``positions`` is the exposure (fraction of
    equity, −1..1) in effect after each bar's fill; ``trades`` has one row per closed trade.
    A batch (:func:`backtest_batch`) holds many combinations as columns of ``sim``; the Series
    then describe the first one, and :func:`~meridian.engine.metrics.compute_metrics_batch`
    measures them all.
    """

    index: pd.DatetimeIndex
    close: np.ndarray
    initial_capital: float
    sim: Simulation
    trade_arrays: TradeArrays

    @cached_property
    def equity(self) -> pd.Series:
        return pd.Series(self.sim.equity[:, 0], index=self.index, name="equity")

    @cached_property
    def returns(self) -> pd.Series:
        """Bar-over-bar equity returns; the first bar's is measured from the initial capital."""
        values = returns_from_equity(self.sim.equity[:, 0], self.initial_capital)
        return pd.Series(values, index=self.index, name="returns")

    @cached_property
    def positions(self) -> pd.Series:
        return pd.Series(self.sim.held[:, 0], index=self.index, name="position")

    @cached_property
    def drawdown(self) -> pd.Series:
        """Equity's fall from its running peak, as a fraction (0 at a new high, −0.25 = −25%)."""
        return pd.Series(drawdown(self.sim.equity[:, 0]), index=self.index, name="drawdown")

    @cached_property
    def trades(self) -> pd.DataFrame:
        first = self.trade_arrays.column == 0
        if first.all():
            return self.trade_arrays.to_frame(self.index)
        arrays = self.trade_arrays
        return type(arrays)(*(getattr(arrays, f)[first] for f in arrays.__dataclass_fields__)
                            ).to_frame(self.index)


def as_positions(position, index: pd.Index) -> np.ndarray:
    """Target exposures as floats aligned to the data; NaN means flat (e.g. indicator warm-up)."""
    if isinstance(position, pd.DataFrame):
        raise EngineError("position must be a Series or 1-D array, not a DataFrame")
    if isinstance(position, pd.Series):
        if position.index is not index and not position.index.equals(index):
            raise EngineError(
                f"position is indexed differently from the data ({len(position)} vs "
                f"{len(index)} bars); return pd.Series(values, index=data.index)"
            )
        values = position.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = np.asarray(position, dtype=float)
        if values.ndim != 1 or len(values) != len(index):
            raise EngineError(
                f"position has shape {values.shape}; expected one value per bar ({len(index)},)"
            )
    values = np.where(np.isnan(values), 0.0, values)
    bad = np.flatnonzero(~(np.abs(values) <= 1.0))
    if len(bad):
        first = bad[0]
        raise EngineError(
            f"position at bar {first} ({index[first]}) is {values[first]}; "
            "targets must lie in [-1, 1] (fraction of equity)"
        )
    return values


def _as_timestamp(name: str, value, index: pd.DatetimeIndex) -> pd.Timestamp | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise EngineError(f"{name}={value!r} is not a date; use YYYY-MM-DD") from None
    if index.tz is not None and stamp.tz is None:
        stamp = stamp.tz_localize(index.tz)
    return stamp


def _window(data: pd.DataFrame, target: np.ndarray, start, end):
    """Bars (and targets) from ``start`` to ``end`` inclusive; a date without a time means the
    whole day."""
    first = _as_timestamp("start", start, data.index)
    last = _as_timestamp("end", end, data.index)
    keep = np.ones(len(data), dtype=bool)
    if first is not None:
        keep &= data.index >= first
    if last is not None:
        if last == last.normalize():
            last = last + pd.Timedelta(days=1) - pd.Timedelta(1, "us")
        keep &= data.index <= last
    if not keep.any():
        raise EngineError(
            f"no bars between start={start!r} and end={end!r}; the data runs from "
            f"{data.index[0]:%Y-%m-%d} to {data.index[-1]:%Y-%m-%d}"
        )
    return data.loc[keep], target[keep]


def backtest(
    data: pd.DataFrame,
    position,
    *,
    initial_capital: float = 100_000,
    commission: float = 0.0,
    slippage: float = 0.0,
    fill: str = "next_open",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> EngineResult:
    """Simulate holding ``position`` (target exposure per bar, decided at that bar's close).

    ``fill="next_open"`` trades at the next bar's open, so nothing decided from bar t's close
    can profit from bar t's prices; ``fill="close"`` trades at the same close (only honest if
    the decision really can be made at the close). ``commission`` is a fraction of traded
    notional charged on every fill; ``slippage`` moves each fill price against you by that
    fraction. Positions still open after the last bar close at its close. ``start`` / ``end``
    (inclusive dates) restrict trading to a window; the positions may have been computed from
    earlier bars, which is how indicators warm up without look-ahead. See
    :mod:`meridian.engine._simulate` for the exact accounting.
    """
    target = as_positions(position, data.index)
    return backtest_batch(data, target[:, None], initial_capital=initial_capital,
                          commission=commission, slippage=slippage, fill=fill, start=start,
                          end=end)


def _check_options(data: pd.DataFrame, initial_capital, commission, slippage, fill) -> None:
    if fill not in FILLS:
        raise EngineError(f"fill={fill!r} is not supported; use one of {', '.join(FILLS)}")
    if not initial_capital > 0:
        raise EngineError(f"initial_capital must be positive, got {initial_capital}")
    for name, rate in (("commission", commission), ("slippage", slippage)):
        if not 0.0 <= rate < 0.5:
            raise EngineError(f"{name} must be a fraction in [0, 0.5), got {rate}")
    missing = [c for c in ("Open", "Close") if c not in data.columns]
    if missing or len(data) == 0:
        raise EngineError(
            f"data needs Open and Close columns and at least one bar; missing {missing or 'bars'}"
        )


def backtest_batch(
    data: pd.DataFrame,
    targets: np.ndarray,
    *,
    initial_capital: float = 100_000,
    commission: float = 0.0,
    slippage: float = 0.0,
    fill: str = "next_open",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> EngineResult:
    """:func:`backtest` for many combinations at once: ``targets`` is bars × combinations
    (each column already checked with :func:`as_positions`). One vectorized pass for all."""
    _check_options(data, initial_capital, commission, slippage, fill)
    if start is not None or end is not None:
        data, targets = _window(data, targets, start, end)
    open_ = data["Open"].to_numpy(dtype=float)
    close = data["Close"].to_numpy(dtype=float)
    sim = simulate(
        open_, close, targets, initial_capital=float(initial_capital),
        commission=commission, slippage=slippage, fill=fill,
    )
    mark = open_ if fill == "next_open" else close
    trades = closed_trades(sim, mark, close, commission, slippage)
    return EngineResult(data.index, close, float(initial_capital), sim, trades)
