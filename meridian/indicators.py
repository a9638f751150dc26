"""Building blocks for signal functions: plain numpy, vectorized, no look-ahead.

Every function here uses only values at or before each bar, so a position derived from them
at bar t's close is decidable at that close. Strategies (and the notebooks they are
extracted from) import these rather than re-writing them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def values(series) -> np.ndarray:
    """A float numpy view of a Series or array (NaN for missing)."""
    if isinstance(series, pd.Series):
        array = series.to_numpy()
        return array if array.dtype == np.float64 else series.to_numpy(dtype=float,
                                                                        na_value=np.nan)
    return np.asarray(series, dtype=float)


def shift(x: np.ndarray, periods: int) -> np.ndarray:
    """``x`` moved forward by ``periods`` bars (``out[t] = x[t − periods]``), NaN-padded.

    Only non-negative shifts exist here: a negative one would read the future."""
    if periods < 0:
        raise ValueError(f"shift by {periods} would look ahead; periods must be >= 0")
    out = np.full(len(x), np.nan)
    if periods < len(x):
        out[periods:] = x[: len(x) - periods]
    return out


def median_price(high, low) -> np.ndarray:
    """Hurst's median price ``(High + Low) / 2``."""
    return (values(high) + values(low)) / 2.0


def sma(x, window: int) -> np.ndarray:
    """Simple moving average over ``window`` bars ending at t; NaN for the first window − 1.

    Inside a sweep (:func:`shared_windows`) the average of a data column is computed once per
    window and shared, read-only, by every combination that asks for it."""
    x = values(x)
    key = _shared_key("sma", x, window)
    if key is not None and key in _windows:
        return _windows[key]
    out = np.full(len(x), np.nan)
    if 1 <= window <= len(x):
        sums = np.cumsum(np.concatenate([[0.0], x]))
        out[window - 1:] = (sums[window:] - sums[:-window]) / window
    if key is not None and len(_windows) < MAX_SHARED:
        out.setflags(write=False)
        _windows[key] = out
    return out


# A per-sweep cache of indicator windows. A sweep of fast × slow moving averages asks for the
# same few windows thousands of times; computing each once is the cheapest speed-up there is.
# Only the sweep's own data columns are cached (registered by address, kept alive for the
# whole sweep), so an address can never be reused by another array while its entries live.
MAX_SHARED = 4096
_columns: dict[int, np.ndarray] = {}
_windows: dict[tuple, np.ndarray] = {}


def shared_windows(data: pd.DataFrame) -> None:
    """Register ``data``'s columns as a sweep's shared inputs (drops any earlier sweep's)."""
    _columns.clear()
    _windows.clear()
    for frame in getattr(data, "frames", {"": data}).values():  # a universe: every market's
        for column in frame.columns:
            array = frame[column].to_numpy()
            if array.dtype == np.float64:
                _columns[array.__array_interface__["data"][0]] = array


def _shared_key(name: str, x: np.ndarray, window: int) -> tuple | None:
    if not _columns:
        return None
    address = x.__array_interface__["data"][0]
    column = _columns.get(address)
    if column is None or column.shape != x.shape or column.strides != x.strides:
        return None
    return name, address, window


def forward_fill(x: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward (leading NaNs stay NaN)."""
    valid = ~np.isnan(x)
    last = np.maximum.accumulate(np.where(valid, np.arange(len(x)), -1))
    out = x[np.maximum(last, 0)]
    out[last < 0] = np.nan
    return out


def cross_state(fast, slow) -> np.ndarray:
    """+1 after ``fast`` last crossed above ``slow``, −1 after it last crossed below, 0 before
    the first cross. Touching the line is not a cross: the previous side is kept."""
    with np.errstate(invalid="ignore"):
        side = np.sign(values(fast) - values(slow))  # NaN while either is undefined
    side[side == 0] = np.nan
    defined = ~np.isnan(side)
    if defined.any() and not defined[np.argmax(defined):].all():
        side = forward_fill(side)  # ties and gaps keep the previous side
    changed = np.zeros(len(side), dtype=bool)
    with np.errstate(invalid="ignore"):
        changed[1:] = (side[1:] * side[:-1]) < 0  # false wherever a NaN is involved
    if not changed.any():
        return np.zeros(len(side))
    first = int(np.argmax(changed))
    out = np.zeros(len(side))
    out[first:] = side[first:]  # defined from the first cross on: NaNs only come before it
    return out


def cross_states(fast: np.ndarray, slow: np.ndarray, fast_column: np.ndarray,
                 slow_column: np.ndarray) -> np.ndarray:
    """:func:`cross_state` for many pairs at once (a sweep's ``signals_batch``): column k is
    ``cross_state(fast[:, fast_column[k]], slow[:, slow_column[k]])``, bars × pairs, with the
    same result column by column, compiled. Each distinct line is computed once by the caller
    (one moving average per window, one FLD per offset) and shared by every pair using it."""
    from meridian.engine._cross import cross_columns  # numba: only sweeps pay for it

    fast = np.asfortranarray(np.asarray(fast, dtype=float).reshape(len(fast), -1))
    slow = np.asfortranarray(np.asarray(slow, dtype=float).reshape(len(slow), -1))
    out = np.empty((len(fast), len(fast_column)), order="F")
    cross_columns(fast, slow, np.asarray(fast_column, np.int64),
                  np.asarray(slow_column, np.int64), out)
    return out


def gated_states(states: np.ndarray, column: np.ndarray, gate: np.ndarray | None,
                 long_from: np.ndarray, short_to: np.ndarray) -> np.ndarray:
    """Positions of many combinations at once, each a column of ``states`` (+1 / −1 / 0, e.g.
    :func:`cross_states`) held only while a filter allows it: column k is
    ``states[:, column[k]]`` where a long holds while ``gate >= long_from[k]`` and a short
    while ``gate <= short_to[k]`` (a NaN gate or bound never allows: ``short_to`` NaN means no
    shorts; no ``gate`` means only the bounds' NaNs matter). Bars × combinations, compiled,
    written once: a COT filter swept over thresholds costs one pass."""
    from meridian.engine._cross import gate_columns

    states = np.asfortranarray(np.asarray(states, dtype=float).reshape(len(states), -1))
    count = len(column)
    low = np.broadcast_to(np.asarray(long_from, dtype=float), (count,)).copy()
    high = np.broadcast_to(np.asarray(short_to, dtype=float), (count,)).copy()
    if gate is None:
        gate = np.zeros(len(states))
        low = np.where(np.isnan(low), np.nan, -np.inf)
        high = np.where(np.isnan(high), np.nan, np.inf)
    out = np.empty((len(states), count), order="F")
    gate_columns(states, np.asarray(column, np.int64), np.asarray(gate, dtype=float), low,
                 high, out)
    return out
