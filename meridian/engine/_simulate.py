"""The vectorized core: target exposures in, equity out, with no Python loop over bars.

Why it can be vectorized: between two fills the number of units held is constant, so equity
follows price linearly, and every cost is proportional to the equity at the fill. Each fill
therefore multiplies equity by a factor that depends only on the exposure before the fill
(drifted by the price since the previous fill), the new target and the cost rates. Equity is a
cumulative product of those factors, rescaled inside each holding segment by the price move
since its fill. The same code runs on one target column or on a bars × combinations matrix,
which is what makes parameter sweeps cheap.

Conventions (identical to backtesting.py's market orders with ``trade_on_close=False``):

* ``held[t]`` is the exposure in effect after bar t's fill. With ``fill="next_open"`` the target
  decided at bar t's close fills at bar t+1's open (``held[t] = target[t-1]``); with
  ``fill="close"`` it fills at bar t's close. Nothing fills before the first decision.
* After a fill the position's notional is exactly ``held × equity`` (costs paid first); the
  units then stay fixed until the target changes, so exposure drifts with price in between.
* A buy fills at ``mark × (1 + slippage)``, a sell at ``mark × (1 − slippage)``; commission is
  ``commission × |units traded| × fill price`` on every fill, entry and exit alike. A flip from
  long to short is one sell covering both legs, which costs exactly what closing then opening
  costs.
* A position still open after the last bar is closed at the last close, costs included.
* Equity that reaches zero stays at zero (ruin): the account cannot trade again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Simulation:
    """Raw arrays of one simulation; shapes are (bars,) or (bars, combinations)."""

    equity: np.ndarray
    held: np.ndarray
    event: np.ndarray
    equity_before_fill: np.ndarray
    equity_after_fill: np.ndarray
    mark_at_last_fill: np.ndarray
    final_factor: np.ndarray


def held_exposure(target: np.ndarray, fill: str) -> np.ndarray:
    """Exposure in effect after each bar's fill, from the targets decided at each close."""
    held = np.empty_like(target)
    if fill == "next_open":
        held[0] = 0.0
        held[1:] = target[:-1]
    else:
        held[:] = target
        if len(target) > 1:
            # A position opened on the last close would be closed at that same price: skip it.
            held[-1] = held[-2]
    return held


def _fill_factor(before: np.ndarray, after: np.ndarray, buy_cost: float, sell_cost: float):
    """Equity multiplier of a fill moving exposure from ``before`` to ``after`` (both × equity).

    With post-fill notional ``after × E_post`` and cost rate β per unit of notional traded,
    ``E_post = E_pre − β |after × E_post − before × E_pre|``. Buying (after > before) solves to
    ``x = (1 + β·before) / (1 + β·after)``, selling to ``x = (1 − β·before) / (1 − β·after)``.
    """
    buy = after > before
    up = (1.0 + buy_cost * before) / (1.0 + buy_cost * after)
    down = (1.0 - sell_cost * before) / (1.0 - sell_cost * after)
    return np.where(buy, up, down)


def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    *,
    initial_capital: float,
    commission: float,
    slippage: float,
    fill: str,
) -> Simulation:
    """Equity at each bar's close for target exposures decided at each bar's close."""
    two_d = target.ndim == 2
    column = (lambda a: a[:, None]) if two_d else (lambda a: a)
    mark = open_ if fill == "next_open" else close
    buy_cost = slippage + commission * (1.0 + slippage)
    sell_cost = slippage + commission * (1.0 - slippage)

    held = held_exposure(target, fill)
    held_before = np.zeros_like(held)
    held_before[1:] = held[:-1]
    event = held != held_before

    bars = np.arange(len(held))
    last_fill = np.maximum.accumulate(np.where(event, column(bars), 0), axis=0)
    previous_fill = np.zeros_like(last_fill)
    previous_fill[1:] = last_fill[:-1]

    with np.errstate(divide="ignore", invalid="ignore"):
        move = column(mark) / mark[previous_fill]
        growth = np.maximum(1.0 + held_before * (move - 1.0), 0.0)
        drifted = np.nan_to_num(held_before * move / growth)
        factor = np.where(event, growth * _fill_factor(drifted, held, buy_cost, sell_cost), 1.0)
        after_fill = initial_capital * np.cumprod(factor, axis=0)
        mark_at_fill = mark[last_fill]
        equity = after_fill * np.maximum(1.0 + held * (column(close) / mark_at_fill - 1.0), 0.0)

        last_growth = equity[-1] / after_fill[-1]
        last_drift = np.nan_to_num(held[-1] * (close[-1] / mark_at_fill[-1]) / last_growth)
        final_factor = _fill_factor(last_drift, np.zeros_like(last_drift), buy_cost, sell_cost)
    equity[-1] = equity[-1] * final_factor
    alive = np.minimum.accumulate(equity > 0.0, axis=0)
    equity = np.where(alive, equity, 0.0)

    before_fill = np.empty_like(after_fill)
    before_fill[0] = initial_capital
    before_fill[1:] = after_fill[:-1]
    before_fill = before_fill * growth
    return Simulation(equity, held, event, before_fill, after_fill, mark_at_fill, final_factor)
