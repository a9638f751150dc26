"""``backtest(data, position)``: the one way Meridian turns target exposures into results."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from meridian.engine._simulate import Simulation, simulate
from meridian.engine._trades import TradeArrays, closed_trades, trades_from_rows
from meridian.engine.instrument import Instrument
from meridian.engine.metrics import drawdown, returns_from_equity
from meridian.engine.sizing import scale as sizing_scale
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
        return type(arrays)(*(None if getattr(arrays, f) is None else getattr(arrays, f)[first]
                              for f in arrays.__dataclass_fields__)).to_frame(self.index)


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


def _window_mask(data: pd.DataFrame, start, end) -> np.ndarray:
    """Which bars lie from ``start`` to ``end`` inclusive; a date without a time means the
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
    return keep


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
    stop_loss: float | pd.Series | None = None,
    take_profit: float | pd.Series | None = None,
    trailing_stop: float | None = None,
    instrument: Instrument | None = None,
    sizing: str = "fixed_fraction",
    target_volatility: float | None = None,
    max_leverage: float = 1.0,
    financing_rate: float = 0.0,
) -> EngineResult:
    """Simulate holding ``position`` (target exposure per bar, decided at that bar's close).

    ``fill="next_open"`` trades at the next bar's open, so nothing decided from bar t's close
    can profit from bar t's prices; ``fill="close"`` trades at the same close (only honest if
    the decision really can be made at the close). ``commission`` is a fraction of traded
    notional charged on every fill; ``slippage`` moves each fill price against you by that
    fraction. Positions still open after the last bar close at its close. ``start`` / ``end``
    (inclusive dates) restrict trading to a window; the positions may have been computed from
    earlier bars, which is how indicators warm up without look-ahead.

    Exits (see :mod:`meridian.engine._orders` for the bar-by-bar rules):

    * ``stop_loss`` / ``take_profit``: a float is a fraction of the entry fill price (0.05:
      5 % below the entry for a long's stop, above for its target; the reverse for a short); a
      ``pd.Series`` aligned to the data is a price level, the level decided at bar t's close
      being in effect during bar t+1 (NaN: no level on that bar) — e.g. the FLD line.
    * ``trailing_stop``: a fraction from the best price since entry (highest High for a long,
      lowest Low for a short), updated at each close, in effect from the next bar.
    * Stops and targets are live from the entry bar; a bar opening beyond a level fills at its
      Open; a bar reaching both fills the stop (pessimistic); costs apply to these fills; after
      such an exit the position stays flat until the target exposure changes.

    Sizing: ``instrument`` (:class:`~meridian.engine.instrument.Instrument`) trades whole
    contracts with a multiplier, tick and per-contract commission; ``sizing=
    "volatility_target"`` scales exposure by ``target_volatility`` / realized volatility (see
    :mod:`meridian.engine.sizing`), capped by ``max_leverage``; borrowing beyond equity pays
    ``financing_rate`` a year. Equity reaching zero ends trading (ruin, exit reason ``ruin``).
    Without any of these the vectorized engine (:mod:`meridian.engine._simulate`) runs.
    """
    target = as_positions(position, data.index)
    return backtest_batch(data, target[:, None], initial_capital=initial_capital,
                          commission=commission, slippage=slippage, fill=fill, start=start,
                          end=end, stop_loss=stop_loss, take_profit=take_profit,
                          trailing_stop=trailing_stop, instrument=instrument, sizing=sizing,
                          target_volatility=target_volatility, max_leverage=max_leverage,
                          financing_rate=financing_rate)


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


def _fractions(name: str, value, columns: int) -> np.ndarray:
    """A fraction per combination (NaN: off). ``None`` or 0 is off; one number applies to
    every combination; an array gives one per combination (a sweep over ``stop_loss``)."""
    values = np.full(columns, np.nan) if value is None else np.broadcast_to(
        np.asarray(value, dtype=float), (columns,)).astype(float)
    values = np.where(values == 0.0, np.nan, values)
    bad = values[~np.isnan(values) & ~((values > 0) & (values < 1))]
    if len(bad):
        raise EngineError(f"{name}={float(bad[0])!r}: a fraction of the entry price in (0, 1), "
                          "e.g. 0.05 for 5 % (0 or None: off)")
    return values


def _levels(name: str, value, index: pd.DatetimeIndex) -> np.ndarray | None:
    """A price-level Series as the level in effect during each bar (decided at the previous
    close), shaped bars × 1; None when ``value`` is not a Series."""
    if not isinstance(value, pd.Series):
        return None
    if not value.index.equals(index):
        raise EngineError(f"{name}: the level Series is indexed differently from the data "
                          f"({len(value)} vs {len(index)} bars); align it to data.index")
    levels = value.to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isnan(levels) & ~(levels > 0))
    if len(bad):
        raise EngineError(f"{name}: level at bar {bad[0]} ({index[bad[0]]}) is "
                          f"{levels[bad[0]]}; price levels must be positive (NaN: none)")
    effective = np.full(len(levels), np.nan)
    effective[1:] = levels[:-1]
    return effective[:, None]


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
    stop_loss=None,
    take_profit=None,
    trailing_stop=None,
    instrument: Instrument | None = None,
    sizing: str = "fixed_fraction",
    target_volatility: float | None = None,
    max_leverage: float = 1.0,
    financing_rate: float = 0.0,
) -> EngineResult:
    """:func:`backtest` for many combinations at once: ``targets`` is bars × combinations
    (each column already checked with :func:`as_positions`); ``stop_loss``, ``take_profit``
    and ``trailing_stop`` may also give one fraction per combination. One pass for all."""
    _check_options(data, initial_capital, commission, slippage, fill)
    columns = targets.shape[1]
    stop_levels = _levels("stop_loss", stop_loss, data.index)
    take_levels = _levels("take_profit", take_profit, data.index)
    stops = _fractions("stop_loss", None if stop_levels is not None else stop_loss, columns)
    takes = _fractions("take_profit", None if take_levels is not None else take_profit, columns)
    trails = _fractions("trailing_stop", trailing_stop, columns)
    close_all = data["Close"].to_numpy(dtype=float)
    scales = sizing_scale(close_all, data.index, sizing, target_volatility, max_leverage)
    if not 0.0 <= financing_rate < 1.0:
        raise EngineError(f"financing_rate must be an annual fraction in [0, 1), got "
                          f"{financing_rate!r}")
    if instrument is not None and not isinstance(instrument, Instrument):
        raise EngineError(f"instrument must be an Instrument(multiplier=..., tick_size=..., "
                          f"commission_per_contract=...), got {instrument!r}")
    ordered = (instrument is not None or sizing != "fixed_fraction" or stop_levels is not None
               or take_levels is not None or not np.isnan(stops).all()
               or not np.isnan(takes).all() or not np.isnan(trails).all())
    if start is not None or end is not None:
        keep = _window_mask(data, start, end)
        data, targets, scales = data.loc[keep], targets[keep], scales[keep]
        stop_levels = None if stop_levels is None else stop_levels[keep]
        take_levels = None if take_levels is None else take_levels[keep]
    open_ = data["Open"].to_numpy(dtype=float)
    close = data["Close"].to_numpy(dtype=float)
    if not ordered:
        sim = simulate(
            open_, close, targets, initial_capital=float(initial_capital),
            commission=commission, slippage=slippage, fill=fill,
        )
        mark = open_ if fill == "next_open" else close
        trades = closed_trades(sim, mark, close, commission, slippage)
        return EngineResult(data.index, close, float(initial_capital), sim, trades)
    missing = [c for c in ("High", "Low") if c not in data.columns]
    if missing:
        raise EngineError(f"stops, targets and contracts need High and Low columns; missing "
                          f"{missing}")
    instrument = instrument or Instrument()
    if not isinstance(instrument, Instrument):
        raise EngineError(f"instrument must be an Instrument(multiplier=..., tick_size=..., "
                          f"commission_per_contract=...), got {instrument!r}")
    instrument.check_prices(close)
    from meridian.engine import _orders
    from meridian.engine.metrics import infer_periods_per_year

    nothing = np.full((len(data), 1), np.nan)
    equity, held, rows = _orders.simulate(
        open_, data["High"].to_numpy(dtype=float), data["Low"].to_numpy(dtype=float), close,
        np.asfortranarray(targets), scales, stops, takes, trails,
        nothing if stop_levels is None else stop_levels,
        nothing if take_levels is None else take_levels,
        next_open=fill == "next_open", commission=commission, slippage=slippage,
        per_contract=instrument.commission_per_contract, multiplier=instrument.multiplier,
        tick=instrument.tick_size, whole=instrument != Instrument(),
        margin=instrument.margin or 0.0, capital=float(initial_capital),
        financing=financing_rate / infer_periods_per_year(data.index),
    )
    equity, held = np.asfortranarray(equity), np.asfortranarray(held)
    before = np.zeros_like(held)
    before[1:] = held[:-1]
    sim = Simulation(equity, held, held != before, equity)
    whole = instrument != Instrument()
    return EngineResult(data.index, close, float(initial_capital), sim,
                        trades_from_rows(rows, whole))
