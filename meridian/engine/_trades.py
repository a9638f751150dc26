"""Fills and closed trades from a simulation of one or many combinations.

A trade is a run of bars holding a position of one sign: it opens on the fill that leaves the
account flat (or flips its sign) and closes on the fill that returns it to flat (or flips it).
Resizing without changing sign stays inside the trade. Work is proportional to the number of
fills, never to the number of bars. Every column starts and ends flat, so trades never span
columns and one pass over the fills of all columns (ordered by column, then time) serves a
single backtest and a whole sweep batch alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from meridian.engine._simulate import Simulation

TRADE_COLUMNS = [
    "entry_time", "exit_time", "direction", "size", "entry_price", "exit_price",
    "pnl", "return", "commission", "entry_bar", "exit_bar", "bars_held", "exit_reason",
]
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "end", "ruin")
"""Why a trade ended, in the order of the integer codes the simulators record."""


@dataclass(frozen=True)
class TradeArrays:
    """Closed trades as numpy arrays (cheap to build; the DataFrame is made on demand).

    ``column`` is the combination (simulation column) each trade belongs to."""

    column: np.ndarray
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    size: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    returns: np.ndarray
    commission: np.ndarray
    reason: np.ndarray
    contracts: np.ndarray | None = None

    def to_frame(self, index: pd.Index) -> pd.DataFrame:
        """One row per closed trade, times taken from the data's index; ``contracts`` (whole
        contracts at entry) when the trades come from an instrument."""
        frame = pd.DataFrame(
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
                "exit_reason": np.asarray(EXIT_REASONS, dtype=object)[self.reason],
            },
            columns=TRADE_COLUMNS,
        )
        if self.contracts is not None:
            frame["contracts"] = self.contracts.astype(np.int64)
        return frame


def _fills(sim: Simulation, mark: np.ndarray, close: np.ndarray):
    """Every fill as (column, bar, units before, units after, mark price), ordered by column
    then time, the close-out of positions still open after the last bar included."""
    columns, bars = np.nonzero(sim.event.T)  # column-major: each column's fills in time order
    units_after = sim.held[bars, columns] * sim.equity_after_fill[bars, columns] / mark[bars]
    units_before = np.zeros_like(units_after)  # the previous fill's units, in the same column
    units_before[1:] = np.where(columns[1:] == columns[:-1], units_after[:-1], 0.0)
    prices = mark[bars]

    still_open = np.flatnonzero(sim.held[-1] != 0.0)
    if len(still_open):
        last = np.searchsorted(columns, still_open, side="right") - 1
        columns = np.concatenate([columns, still_open])
        bars = np.concatenate([bars, np.full(len(still_open), len(close) - 1)])
        units_before = np.concatenate([units_before, units_after[last]])
        units_after = np.concatenate([units_after, np.zeros(len(still_open))])
        prices = np.concatenate([prices, np.full(len(still_open), close[-1])])
        closing_out = np.concatenate([np.zeros(len(prices) - len(still_open)),
                                      np.ones(len(still_open))])
        order = np.lexsort((closing_out, bars, columns))
        columns, bars, units_before, units_after, prices = (
            a[order] for a in (columns, bars, units_before, units_after, prices))
    return columns, bars, units_before, units_after, prices


def closed_trades(
    sim: Simulation, mark: np.ndarray, close: np.ndarray, commission: float, slippage: float
) -> TradeArrays:
    """Split fills into legs (close, resize, open) and sum them per trade."""
    columns, bars, before, after, marks = _fills(sim, mark, close)
    sign_before, sign_after = np.sign(before), np.sign(after)
    flips = sign_before != sign_after
    kinds = (
        (sign_before != 0) & flips,  # closing leg: all of the old position
        (sign_before != 0) & ~flips & (before != after),  # resizing leg: the difference
        (sign_after != 0) & flips,  # opening leg: all of the new position
    )
    sizes = (-before, after - before, after)
    positions = (before, before, after)
    fill_index = np.concatenate([np.flatnonzero(k) for k in kinds])
    leg_kind = np.concatenate([np.full(k.sum(), i) for i, k in enumerate(kinds)])
    leg_units = np.concatenate([u[k] for u, k in zip(sizes, kinds, strict=True)])
    leg_position = np.concatenate([p[k] for p, k in zip(positions, kinds, strict=True)])
    # fills are already in (column, time) order; at a flip the closing leg comes first
    order = np.lexsort((leg_kind, fill_index))
    fill_index, leg_kind, leg_units, leg_position = (
        a[order] for a in (fill_index, leg_kind, leg_units, leg_position))
    leg_bar, leg_column, leg_mark = bars[fill_index], columns[fill_index], marks[fill_index]

    price = leg_mark * (1.0 + slippage * np.sign(leg_units))
    fee = commission * np.abs(leg_units) * price
    cash = -leg_units * price - fee
    adds = np.sign(leg_units) == np.sign(leg_position)  # legs that grow the position

    opens = leg_kind == 2
    trade = np.cumsum(opens) - 1
    starts = np.flatnonzero(opens)
    count = len(starts)
    if count == 0:
        empty_i, empty_f = np.array([], dtype=np.int64), np.array([], dtype=float)
        return TradeArrays(empty_i, empty_i, empty_i, *(empty_f,) * 6, empty_i)

    def per_trade(values: np.ndarray) -> np.ndarray:
        return np.bincount(trade, weights=values, minlength=count)

    added_notional = per_trade(np.where(adds, np.abs(leg_units) * price, 0.0))
    added_units = per_trade(np.where(adds, np.abs(leg_units), 0.0))
    removed_notional = per_trade(np.where(adds, 0.0, np.abs(leg_units) * price))
    removed_units = per_trade(np.where(adds, 0.0, np.abs(leg_units)))
    ends = np.append(starts[1:], len(leg_bar)) - 1
    pnl = per_trade(cash)
    column, exit_bar = leg_column[starts].astype(np.int64), leg_bar[ends].astype(np.int64)
    # the last trade of a column still holding after the last bar was closed by the close-out
    last_of_column = np.append(column[1:] != column[:-1], True)
    still_open = sim.held[-1, column] != 0.0
    at_end = exit_bar == len(close) - 1
    reason = np.where(last_of_column & still_open & at_end, EXIT_REASONS.index("end"), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return TradeArrays(
            column=column,
            entry_bar=leg_bar[starts].astype(np.int64),
            exit_bar=exit_bar,
            size=leg_units[starts],
            entry_price=added_notional / added_units,
            exit_price=removed_notional / removed_units,
            pnl=pnl,
            returns=pnl / added_notional,
            commission=per_trade(fee),
            reason=reason.astype(np.int64),
        )


def trades_from_rows(rows: np.ndarray, whole: bool) -> TradeArrays:
    """:class:`TradeArrays` from the per-bar simulator's trade rows (column, entry bar, exit
    bar, size, entry price, exit price, pnl, return, commission, reason, contracts), ordered
    by column then time like the vectorized path's."""
    rows = rows[np.lexsort((rows[:, 2], rows[:, 0]))] if len(rows) else rows.reshape(0, 11)
    integer = [rows[:, i].astype(np.int64) for i in (0, 1, 2)]
    return TradeArrays(*integer, *(rows[:, i] for i in range(3, 9)),
                       reason=rows[:, 9].astype(np.int64),
                       contracts=np.abs(rows[:, 3]) if whole else None)
