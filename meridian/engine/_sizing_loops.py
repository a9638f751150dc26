"""The compiled loops of :mod:`meridian.engine.sizing` (numba, cached), in a module of their
own so that a backtest without volatility sizing never loads numba."""

from __future__ import annotations

import math

import numpy as np

from meridian.engine._jit import njit  # numba, with its cache folder set


@njit(cache=True)
def _rolling_std(close, window, min_periods):
    """Sample standard deviation of the returns ``close[t]/close[t−1] − 1`` over the last
    ``window`` of them (at least ``min_periods``), by Welford's online update with removal
    (numerically stable, one pass); exactly 0 over identical returns."""
    bars = len(close)
    out = np.full(bars, np.nan)
    returns = np.full(bars, np.nan)
    for t in range(1, bars):
        returns[t] = close[t] / close[t - 1] - 1.0
    count, mean, squares, same = 0, 0.0, 0.0, 0
    for t in range(1, bars):
        value = returns[t]
        if not math.isnan(value):
            count += 1
            delta = value - mean
            mean += delta / count
            squares += delta * (value - mean)
        same = same + 1 if t > 1 and returns[t] == returns[t - 1] else 1
        if t > window:
            old = returns[t - window]
            if not math.isnan(old):
                count -= 1
                if count == 0:
                    mean, squares = 0.0, 0.0
                else:
                    delta = old - mean
                    mean -= delta / count
                    squares -= delta * (old - mean)
        if count >= min_periods and count > 1:
            out[t] = 0.0 if same >= count else math.sqrt(max(squares, 0.0) / (count - 1))
    return out


@njit(cache=True)
def _hold(target, scale, rebalance):
    sized = np.empty_like(target)
    for k in range(target.shape[1]):
        kept = scale[0, k]
        for t in range(target.shape[0]):
            if t > 0 and (target[t, k] != target[t - 1, k] or rebalance[t]
                          or (scale[t, k] != 0.0 and scale[t - 1, k] == 0.0)):
                kept = scale[t, k]
            sized[t, k] = target[t, k] * kept
    return sized
