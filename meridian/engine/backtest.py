"""``backtest(data, position)``: the one way Meridian turns target exposures into results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from meridian.data.ohlcv import check_frame
from meridian.engine._simulate import Simulation, simulate
from meridian.engine._trades import TradeArrays, closed_trades, trades_from_rows
from meridian.engine.instrument import Instrument
from meridian.engine.metrics import drawdown, returns_from_equity
from meridian.engine.sizing import rebalance_moments
from meridian.engine.sizing import scale as sizing_scale
from meridian.exceptions import EngineError
from meridian.settings import EXITS, LEVELS, RunSettings


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
    settings: RunSettings = field(default_factory=RunSettings)

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


def backtest(data: pd.DataFrame, position, settings: RunSettings | None = None,
             **options: Any) -> EngineResult:
    """Simulate holding ``position`` (target exposure per bar, decided at that bar's close)
    with ``settings`` (:class:`~meridian.settings.RunSettings`; keywords such as
    ``commission=0.001`` or ``instrument=Instrument(50, 0.25)`` change them).

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

    Sizing: the contract fields (``multiplier``, ``tick_size``, ``commission_per_contract``,
    ``margin``; or an ``instrument``) trade whole contracts; ``sizing="volatility_target"``
    scales exposure by ``target_volatility`` / realized volatility (see
    :mod:`meridian.engine.sizing`), capped by ``max_leverage``, sized when the target changes
    (``rebalance="weekly"`` etc. also re-sizes at each period's last close); borrowing beyond
    equity pays
    ``financing_rate`` a year. Equity reaching zero ends trading (ruin, exit reason ``ruin``).
    Without any of these the vectorized engine (:mod:`meridian.engine._simulate`) runs.
    """
    check_frame(data, min_bars=1, required=("Open", "Close"))
    target = as_positions(position, data.index)
    return backtest_batch(data, target[:, None], RunSettings.of(settings, **options))


def _check_data(data: pd.DataFrame) -> None:
    missing = [c for c in ("Open", "Close") if c not in data.columns]
    if missing or len(data) == 0:
        raise EngineError(
            f"data needs Open and Close columns and at least one bar; missing {missing or 'bars'}"
        )


def contract_notional(data: pd.DataFrame) -> np.ndarray:
    """Per bar, the price whole contracts are counted at over the traded price: a rolled
    futures series (:mod:`meridian.data.roll`) is back-adjusted, but a contract costs its own
    ``UnadjustedClose``; 1 for any other series (and where that column is empty)."""
    if "UnadjustedClose" not in data.columns:
        return np.ones(len(data))
    ratio = data["UnadjustedClose"].to_numpy(dtype=float) / data["Close"].to_numpy(dtype=float)
    return np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)


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


def _levels(name: str, value, index: pd.DatetimeIndex) -> np.ndarray:
    """Price levels (a Series aligned to the data, or bars × combinations) as the level in
    effect during each bar (decided at the previous close), shaped bars × columns."""
    if isinstance(value, pd.Series):
        if not value.index.equals(index):
            raise EngineError(f"{name}: the level Series is indexed differently from the data "
                              f"({len(value)} vs {len(index)} bars); align it to data.index")
        value = value.to_numpy(dtype=float, na_value=np.nan)
    levels = np.asarray(value, dtype=float)
    levels = levels[:, None] if levels.ndim == 1 else levels
    if levels.shape[0] != len(index):
        raise EngineError(f"{name}: {levels.shape[0]} price levels for {len(index)} bars")
    bad = np.argwhere(~np.isnan(levels) & ~(levels > 0))
    if len(bad):
        row = bad[0][0]
        raise EngineError(f"{name}: level at bar {row} ({index[row]}) is "
                          f"{levels[tuple(bad[0])]}; price levels must be positive (NaN: none)")
    effective = np.full(levels.shape, np.nan, order="F")
    effective[1:] = levels[:-1]
    return effective


def backtest_batch(
    data: pd.DataFrame,
    targets: np.ndarray,
    settings: RunSettings | None = None,
    *,
    exits: Mapping[str, np.ndarray] | None = None,
    levels: Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> EngineResult:
    """:func:`backtest` for many combinations at once: ``targets`` is bars × combinations
    (each column already checked with :func:`as_positions`). ``exits`` may give one fraction
    per combination of ``stop_loss``, ``take_profit`` or ``trailing_stop`` (a sweep over
    them), ``levels`` a price level per bar and combination (bars × combinations, NaN: none)
    of ``stop_loss`` or ``take_profit`` — both in place of the settings' own. One pass for all.
    """
    settings = RunSettings.of(settings, **options)
    data, targets, orders = order_inputs(data, targets, settings, exits, levels)
    capital = float(settings.initial_capital)
    open_ = data["Open"].to_numpy(dtype=float)
    close = data["Close"].to_numpy(dtype=float)
    if orders is None:
        sim = simulate(
            open_, close, targets, initial_capital=capital, commission=settings.commission,
            slippage=settings.slippage, fill=settings.fill,
        )
        mark = open_ if settings.fill == "next_open" else close
        trades = closed_trades(sim, mark, close, settings.commission, settings.slippage)
        return EngineResult(data.index, close, capital, sim, trades, settings)
    from meridian.engine import _orders

    equity, held, rows = _orders.simulate(**orders)
    equity, held = np.asfortranarray(equity), np.asfortranarray(held)
    before = np.zeros_like(held)
    before[1:] = held[:-1]
    sim = Simulation(equity, held, held != before, equity)
    return EngineResult(data.index, close, capital, sim,
                        trades_from_rows(rows, orders["whole"]), settings)


def order_inputs(data: pd.DataFrame, targets: np.ndarray, settings: RunSettings,
                 exits: Mapping[str, np.ndarray] | None = None,
                 levels: Mapping[str, np.ndarray] | None = None,
                 ) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any] | None]:
    """The bars and targets inside the settings' trading window, and the arguments of the
    per-bar simulator (:func:`meridian.engine._orders.simulate`) when the settings need it
    (stops, targets, contracts, volatility sizing, rebalancing), else None: the vectorized
    engine runs. Checks the data, the exit fractions and the levels."""
    _check_data(data)
    columns = targets.shape[1]
    level_arrays = {}
    for name in LEVELS:
        given = (levels or {}).get(name)
        if given is None and isinstance(getattr(settings, name), pd.Series):
            given = getattr(settings, name)
        if given is not None:
            level_arrays[name] = _levels(name, given, data.index)
    fractions = {}
    for name in EXITS:
        value = (exits or {}).get(name, getattr(settings, name))
        fractions[name] = _fractions(name, None if isinstance(value, pd.Series) else value,
                                     columns)
    periods = settings.periods(data.index)
    close_all = data["Close"].to_numpy(dtype=float)
    scales = sizing_scale(close_all, settings.sizing, settings.target_volatility or None,
                          settings.max_leverage, periods)
    instrument = settings.instrument
    rebalance = rebalance_moments(data.index, settings.rebalance)
    ordered = (instrument is not None or settings.sizing != "fixed_fraction" or level_arrays
               or rebalance.any()
               or any(not np.isnan(values).all() for values in fractions.values()))
    if settings.start or settings.end:
        keep = _window_mask(data, settings.start or None, settings.end or None)
        data, targets, scales = data.loc[keep], targets[keep], scales[keep]
        rebalance = rebalance[keep]
        level_arrays = {name: values[keep] for name, values in level_arrays.items()}
    if not ordered:
        return data, targets, None
    missing = [c for c in ("High", "Low") if c not in data.columns]
    if missing:
        raise EngineError(f"stops, targets and contracts need High and Low columns; missing "
                          f"{missing}")
    whole = instrument is not None
    instrument = instrument or Instrument()
    close = data["Close"].to_numpy(dtype=float)
    instrument.check_prices(close)
    nothing = np.full((len(data), 1), np.nan)
    return data, targets, {
        "open_": data["Open"].to_numpy(dtype=float),
        "high": data["High"].to_numpy(dtype=float), "low": data["Low"].to_numpy(dtype=float),
        "close": close, "target": np.asfortranarray(targets), "scale": scales,
        "stop_frac": fractions["stop_loss"], "take_frac": fractions["take_profit"],
        "trail_frac": fractions["trailing_stop"],
        "stop_level": level_arrays.get("stop_loss", nothing),
        "take_level": level_arrays.get("take_profit", nothing),
        "next_open": settings.fill == "next_open", "commission": settings.commission,
        "slippage": settings.slippage, "per_contract": instrument.commission_per_contract,
        "multiplier": instrument.multiplier, "tick": instrument.tick_size, "whole": whole,
        "margin": instrument.margin or 0.0, "capital": float(settings.initial_capital),
        "financing": settings.financing_rate / periods, "rebalance": rebalance,
        "notional": contract_notional(data) if whole else None,
    }
