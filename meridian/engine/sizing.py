"""How big a position is, in one market or across a universe's markets.

Every sizing turns a strategy's target exposure ``e`` (−1..1) into a weight of equity, known at
bar t's close from bars up to t only (so the sized target decided then never looks ahead):

* ``fixed_fraction``: ``e`` in every market (N markets may hold N × equity).
* ``equal_weight``: ``e / N`` for a universe of N markets (one market: ``e``).
* ``risk_parity``: ``e × (1/σ_i) / Σ_j (1/σ_j)``, the inverse of each market's realized
  volatility over the markets whose volatility is known (0 until it is).
* ``volatility_target``: ``e × (τ/σ_i) / N × IDM``: each market alone would run at the target
  volatility τ; ``IDM = 1 / sqrt(u'ρu)`` (u = 1/N each, ρ the markets' return correlations
  over the same window, negative ones floored at 0, capped at :data:`MAX_IDM`) restores the
  target the diversification would otherwise undershoot. One market: ``e × τ/σ``.
  The gross weight ``Σ|w|`` is capped at ``max_leverage`` (weights scaled down together).

σ is the standard deviation (ddof=1) of the last :data:`WINDOW` close-to-close returns up to
and including bar t (at least :data:`MIN_PERIODS`), annualized with the bars' periods per year.

A position is sized when its target changes (``rebalance="on_signal"``, the default) and then
keeps its units; ``daily``, ``weekly`` or ``monthly`` also re-size every position to its
current weight at the last close of each day, week or month (filled like any signal).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WINDOW = 60
MIN_PERIODS = 20
MAX_IDM = 2.5
"""Cap on the diversification multiplier (as pysystemtrade caps its IDM)."""
PERIODS = {"daily": "D", "weekly": "W", "monthly": "M"}


def realized_volatility(close: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Annualized volatility of the last :data:`WINDOW` returns at each bar (NaN before
    :data:`MIN_PERIODS` of them); ``close`` is one market's bars or bars × markets that share
    one calendar (each column as alone, to the last float)."""
    prices = np.asarray(close, dtype=float)
    columns = prices.reshape(len(prices), -1)
    from meridian.engine._sizing_loops import _rolling_std  # numba loads only when needed

    realized = np.empty(columns.shape)
    for k in range(columns.shape[1]):
        realized[:, k] = _rolling_std(np.ascontiguousarray(columns[:, k]), WINDOW, MIN_PERIODS)
    return realized.reshape(prices.shape) * math.sqrt(periods_per_year)


def scale(close: np.ndarray, sizing: str, target_volatility: float | None,
          max_leverage: float, periods_per_year: float) -> np.ndarray:
    """One market's weight per unit of target exposure at each bar (1.0 for a fixed
    fraction); the settings were checked by :class:`~meridian.settings.RunSettings`."""
    if sizing in ("fixed_fraction", "equal_weight"):
        return np.ones(len(close))
    realized = realized_volatility(close, periods_per_year)
    if sizing == "risk_parity":
        return np.where(realized > 0, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target_volatility / realized
    return np.where(np.isfinite(ratio), np.minimum(ratio, max_leverage), 0.0)


def weights(volatility: np.ndarray, returns: np.ndarray, sizing: str,
            target_volatility: float, max_leverage: float) -> np.ndarray:
    """Each market's weight per unit of target exposure (bars × markets) from its annualized
    ``volatility`` (NaN: not known yet) and, for ``volatility_target``, the markets' bar
    ``returns`` (0 where a market has no bar). One market gets exactly :func:`scale`'s."""
    bars, markets = volatility.shape
    known = volatility > 0
    if sizing == "fixed_fraction":
        return np.ones((bars, markets))
    if sizing == "equal_weight":
        return np.full((bars, markets), 1.0 / markets)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(known, 1.0 / volatility, 0.0)
        if sizing == "risk_parity":
            total = inverse.sum(axis=1, keepdims=True)
            return np.where(known, inverse / total, 0.0)
        each = np.where(known, target_volatility / volatility, 0.0) / markets
    if markets > 1:
        each *= diversification_multiplier(returns)[:, None]
    gross = each.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        capped = each / gross * max_leverage  # one market: exactly max_leverage
    return np.where(gross > max_leverage, capped, each)


def diversification_multiplier(returns: np.ndarray) -> np.ndarray:
    """``1 / sqrt(u'ρu)`` at each bar from the correlations of the last :data:`WINDOW` bar
    returns (bars × markets; u = 1/N each; ρ floored at 0, ρ_ii = 1), at most :data:`MAX_IDM`;
    1.0 until :data:`MIN_PERIODS` returns exist. Rolling sums of the returns' outer products,
    so the cost is bars × markets², not bars × window × markets²."""
    bars, markets = returns.shape
    x = np.nan_to_num(returns, nan=0.0, posinf=0.0, neginf=0.0)
    out = np.ones(bars)
    first = np.zeros(markets)
    second = np.zeros((markets, markets))
    for t in range(bars):
        first += x[t]
        second += np.outer(x[t], x[t])
        if t >= WINDOW:
            old = x[t - WINDOW]
            first -= old
            second -= np.outer(old, old)
        n = min(t + 1, WINDOW)
        if n < MIN_PERIODS:
            continue
        covariance = (second - np.outer(first, first) / n) / (n - 1)
        deviation = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = covariance / np.outer(deviation, deviation)
        rho = np.clip(np.nan_to_num(rho, nan=0.0), 0.0, 1.0)
        np.fill_diagonal(rho, 1.0)
        out[t] = min(1.0 / math.sqrt(rho.mean()), MAX_IDM)
    return out


def rebalance_moments(index: pd.DatetimeIndex, rebalance: str) -> np.ndarray:
    """Bars whose close re-sizes every position: the last bar of each day, week or month
    (none for ``on_signal``)."""
    flags = np.zeros(len(index), dtype=bool)
    if rebalance in PERIODS and len(index) > 1:
        period = index.tz_localize(None) if index.tz is not None else index
        period = period.to_period(PERIODS[rebalance]).asi8
        flags[:-1] = period[1:] != period[:-1]
    return flags


def hold(target: np.ndarray, scale: np.ndarray, rebalance: np.ndarray) -> np.ndarray:
    """The sized target of each bar: ``target × scale`` where the scale is the one of the
    latest sizing moment — a change of the target, a ``rebalance`` bar, or the scale becoming
    known (0 before) — so a position keeps its units between them. ``target`` is bars ×
    columns; ``scale`` one per bar or bars × columns."""
    scale = scale[:, None] if scale.ndim == 1 else scale
    if (scale == scale[:1]).all():
        return target * scale
    from meridian.engine._sizing_loops import _hold

    return _hold(np.ascontiguousarray(target, dtype=float),
                 np.ascontiguousarray(np.broadcast_to(scale, target.shape), dtype=float),
                 np.ascontiguousarray(rebalance, dtype=np.bool_))
