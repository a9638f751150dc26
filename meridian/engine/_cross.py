"""The compiled loop behind :func:`meridian.indicators.cross_states`."""

from __future__ import annotations

import numpy as np

from meridian.engine._jit import njit


@njit(cache=True, nogil=True, error_model="numpy")
def cross_columns(fast, slow, fast_column, slow_column, out):
    """``out[:, k]`` = cross_state of ``fast[:, fast_column[k]]`` over
    ``slow[:, slow_column[k]]``: the side (sign of the difference; a tie or a gap keeps the
    previous side) from the first change of side on, 0 before it."""
    bars = fast.shape[0]
    for k in range(len(fast_column)):
        a, b = fast_column[k], slow_column[k]
        previous = np.nan
        crossed = False
        for t in range(bars):
            gap = fast[t, a] - slow[t, b]
            side = 1.0 if gap > 0 else (-1.0 if gap < 0 else np.nan)
            if np.isnan(side):
                side = previous
            if not crossed and side * previous < 0:
                crossed = True
            out[t, k] = side if crossed else 0.0
            previous = side


@njit(cache=True, nogil=True, error_model="numpy")
def gate_columns(states, column, gate, long_from, short_to, out):
    """``out[:, k]`` = ``states[:, column[k]]`` where allowed, else 0: a long (> 0) while
    ``gate >= long_from[k]``, a short (< 0) while ``gate <= short_to[k]`` (NaN never allows)."""
    bars = states.shape[0]
    for k in range(len(column)):
        c, low, high = column[k], long_from[k], short_to[k]
        for t in range(bars):
            side = states[t, c]
            if side > 0:
                out[t, k] = side if gate[t] >= low else 0.0
            elif side < 0:
                out[t, k] = side if gate[t] <= high else 0.0
            else:
                out[t, k] = 0.0
