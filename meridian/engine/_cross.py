"""The compiled loop behind :func:`meridian.indicators.cross_states`."""

from __future__ import annotations

import numpy as np
from numba import uint64

from meridian.engine._jit import njit


@njit(cache=True, nogil=True, error_model="numpy")
def cross_columns(fast, slow, fast_column, slow_column, out):
    """``out[:, k]`` = cross_state of ``fast[:, fast_column[k]]`` over
    ``slow[:, slow_column[k]]``: the side (sign of the difference; a tie or a gap keeps the
    previous side) from the first change of side on, 0 before it. Two loops, before and
    after that first change, so neither asks at every bar whether it has come; ``uint64``
    indices spare numba's negative-index handling (a third faster together)."""
    bars = fast.shape[0]
    for k in range(len(fast_column)):
        a, b, column = uint64(fast_column[k]), uint64(slow_column[k]), uint64(k)
        previous = np.nan
        bar = 0
        while bar < bars:
            t = uint64(bar)
            gap = fast[t, a] - slow[t, b]
            side = 1.0 if gap > 0 else (-1.0 if gap < 0 else previous)
            if side * previous < 0:  # the first change of side: written by the loop below
                break
            out[t, column] = 0.0
            previous = side
            bar += 1
        while bar < bars:
            t = uint64(bar)
            gap = fast[t, a] - slow[t, b]
            side = 1.0 if gap > 0 else (-1.0 if gap < 0 else previous)
            out[t, column] = side
            previous = side
            bar += 1


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
