"""Fills and closed trades from a one-column simulation.

A trade is a run of bars holding a position of one sign: it opens on the fill that leaves the
account flat (or flips its sign) and closes on the fill that returns it to flat (or flips it).
Resizing without changing sign stays inside the trade. Work is proportional to the number of
fills, never to the number of bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from meridian.engine._simulate import Simulation

TRADE_COLUMNS = [
    "entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
    "pnl", "return", "commission", "entry_bar", "exit_bar", "bars_held",
]


@dataclass(frozen=True)
class TradeArrays:
    """Closed trades as numpy arrays (cheap to build; the DataFrame is made on demand)."""

    entry_bar: np.ndarray
    exit_bar: np.ndarray
    size: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    returns: np.ndarray
    commission: np.ndarray

    def to_frame(self, index: pd.Index) -> pd.DataFrame:
        """One row per closed trade, times taken from the data's index."""
        return pd.DataFrame(
            {
                "entry_time": index[self.entry_bar],
                "exit_time": index[self.exit_bar],
                "direction": np.where(self.size > 0, "long", "short"),
                "size": self.size,
                "entry_price": self.entry_price,
                "exit_price": self.exit_price,
                "pnl": self.pnl,
                "return": self.returns,
                "commission": self.commission,
                "entry_bar": self.entry_bar,
                "exit_bar": self.exit_bar,
                "bars_held": self.exit_bar - self.entry_bar,
            },
            columns=TRADE_COLUMNS,
        )


def _fills(sim: Simulation, mark: np.ndarray, close: np.ndarray):
    """Every fill as (bar, units before, units after, mark price), the final close-out included."""
    bars = np.flatnonzero(sim.event)
    held_after = sim.held[bars]
    units_after = held_after * sim.equity_after_fill[bars] / mark[bars]
    units_before = np.zeros_like(units_after)
    units_before[1:] = units_after[:-1]
    prices = mark[bars]
    if sim.held[-1] != 0.0:
        last_units = units_after[-1] if len(units_after) else 0.0
        bars = np.append(bars, len(close) - 1)
        units_before = np.append(units_before, last_units)
        units_after = np.append(units_after, 0.0)
        prices = np.append(prices, close[-1])
    return bars, units_before, units_after, prices


def closed_trades(
    sim: Simulation, mark: np.ndarray, close: np.ndarray, commission: float, slippage: float
) -> TradeArrays:
    """Split fills into legs (close, resize, open) and sum them per trade."""
    bars, before, after, marks = _fills(sim, mark, close)
    sign_before, sign_after = np.sign(before), np.sign(after)
    flips = sign_before != sign_after
    closing = (sign_before != 0) & flips
    opening = (sign_after != 0) & flips
    resizing = (sign_before != 0) & ~flips & (before != after)

    # Legs in time order; at a flip the closing leg comes before the opening one.
    leg_bar = np.concatenate([bars[closing], bars[resizing], bars[opening]])
    leg_units = np.concatenate(
        [-before[closing], (after - before)[resizing], after[opening]]
    )
    leg_order = np.concatenate(
        [np.zeros(closing.sum()), np.ones(resizing.sum()), np.full(opening.sum(), 2.0)]
    )
    leg_mark = np.concatenate([marks[closing], marks[resizing], marks[opening]])
    leg_position = np.concatenate([before[closing], before[resizing], after[opening]])
    leg_opens = leg_order == 2.0
    order = np.lexsort((leg_order, leg_bar))
    leg_bar, leg_units, leg_opens, leg_mark, leg_position = (
        a[order] for a in (leg_bar, leg_units, leg_opens, leg_mark, leg_position)
    )

    price = leg_mark * (1.0 + slippage * np.sign(leg_units))
    fee = commission * np.abs(leg_units) * price
    cash = -leg_units * price - fee
    adds = np.sign(leg_units) == np.sign(leg_position)  # legs that grow the position

    trade = np.cumsum(leg_opens) - 1
    starts = np.flatnonzero(leg_opens)
    count = len(starts)
    if count == 0:
        empty_i, empty_f = np.array([], dtype=np.int64), np.array([], dtype=float)
        return TradeArrays(empty_i, empty_i, *(empty_f,) * 6)

    def per_trade(values: np.ndarray) -> np.ndarray:
        return np.bincount(trade, weights=values, minlength=count)

    added_notional = per_trade(np.where(adds, np.abs(leg_units) * price, 0.0))
    added_units = per_trade(np.where(adds, np.abs(leg_units), 0.0))
    removed_notional = per_trade(np.where(adds, 0.0, np.abs(leg_units) * price))
    removed_units = per_trade(np.where(adds, 0.0, np.abs(leg_units)))
    ends = np.append(starts[1:], len(leg_bar)) - 1
    pnl = per_trade(cash)
    with np.errstate(divide="ignore", invalid="ignore"):
        return TradeArrays(
            entry_bar=leg_bar[starts].astype(np.int64),
            exit_bar=leg_bar[ends].astype(np.int64),
            size=leg_units[starts],
            entry_price=added_notional / added_units,
            exit_price=removed_notional / removed_units,
            pnl=pnl,
            returns=pnl / added_notional,
            commission=per_trade(fee),
        )
