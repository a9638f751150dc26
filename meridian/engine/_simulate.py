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
    """Raw arrays of one simulation, shaped (bars, combinations) in column-major order, so a
    column reduces exactly as a 1-D array would (one backtest = one column).

    ``equity_after_fill`` is only meaningful on bars where ``event`` (a fill) is True."""

    equity: np.ndarray
    held: np.ndarray
    event: np.ndarray
    equity_after_fill: np.ndarray


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
    """Equity at each bar's close for targets (bars × combinations) decided at each close.

    Fills are sparse (a few percent of bars), so the fill factors are computed only where the
    held exposure changes; everything else is one pass of whole-array arithmetic.
    """
    target = np.asfortranarray(target.reshape(len(target), -1), dtype=float)
    mark = open_ if fill == "next_open" else close
    buy_cost = slippage + commission * (1.0 + slippage)
    sell_cost = slippage + commission * (1.0 - slippage)

    held = held_exposure(target, fill)
    held_before = np.zeros_like(held)
    held_before[1:] = held[:-1]
    event = held != held_before
    rows, cols = np.nonzero(event)

    # Bar of the latest fill at or before each bar (0 before the first: held is 0 there).
    bars = np.arange(len(held), dtype=np.int32)[:, None]
    last_fill = np.maximum.accumulate(np.where(event, bars, 0), axis=0)
    previous_fill = np.where(rows > 0, last_fill[np.maximum(rows - 1, 0), cols], 0)

    with np.errstate(divide="ignore", invalid="ignore"):
        was = held_before[rows, cols]
        move = mark[rows] / mark[previous_fill]
        growth = np.maximum(1.0 + was * (move - 1.0), 0.0)
        drifted = was * move / growth
        drifted[~np.isfinite(drifted)] = 0.0  # flat before (0/0) or ruined (x/0)
        factor = np.ones_like(held)
        factor[rows, cols] = growth * _fill_factor(drifted, held[rows, cols], buy_cost,
                                                   sell_cost)
        after_fill = np.cumprod(factor, axis=0)
        after_fill *= initial_capital
        equity = close[:, None] / mark[last_fill]
        equity -= 1.0
        equity *= held
        equity += 1.0
        np.maximum(equity, 0.0, out=equity)
        equity *= after_fill

        # Positions still open after the last bar are closed at its close, costs included.
        last_growth = equity[-1] / after_fill[-1]
        last_drift = held[-1] * (close[-1] / mark[last_fill[-1]]) / last_growth
        last_drift[~np.isfinite(last_drift)] = 0.0
        equity[-1] *= _fill_factor(last_drift, np.zeros_like(last_drift), buy_cost, sell_cost)
    ruined = equity <= 0.0
    if ruined.any():  # equity that reaches zero stays at zero
        equity = np.asfortranarray(np.where(np.maximum.accumulate(ruined, axis=0), 0.0, equity))
    return Simulation(np.asfortranarray(equity), held, event, after_fill)
