# Generated from notebooks/sma_cross.py by meridian extract — edit the notebook, not this file.
# Notebook SHA-256: 2744c5d32bea19835ec4d799cdc082b8f06d43d56ec2387177971537474af389
"""Moving-average crossover

Long after the fast simple moving average crosses above the slow one, short after it crosses
below; flat only until the first cross. The textbook second example, and the strategy peers
such as backtesting.py ship, so results can be compared side by side.
"""

import numpy as np
import pandas as pd

from meridian.indicators import cross_state, cross_states, sma, values

PARAMS = {
    "fast": 10,
    "slow": 20,
}

# The notebook's run settings other than the defaults (sweeps start from them).
SETTINGS = {}


# Checked before any run, sweep or backtest starts (a value outside is refused in one line).
PARAM_RANGES = {"fast": "[1, inf)", "slow": "[2, inf)"}
# Rules across parameters, checked as early (a comparison of names and numbers, never run).
PARAM_RULES = {"fast < slow": "the fast average must be shorter than the slow one"}
# Parameters counted in bars: each must leave the data 20 bars to trade.
WINDOWS = ("fast", "slow")


def signals(data: pd.DataFrame, fast: int = 10, slow: int = 20) -> pd.Series:
    """+1 / -1 after the last cross of SMA(fast) over SMA(slow); 0 before the first cross."""
    if not 1 <= fast < slow:
        raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
    position = cross_state(sma(data["Close"], fast), sma(data["Close"], slow))
    return pd.Series(position, index=data.index, name="position")


def signals_batch(data: pd.DataFrame, fast: np.ndarray, slow: np.ndarray) -> np.ndarray | None:
    """``signals`` for many combinations at once, for sweeps (one value per combination in
    each array): bars × combinations, each distinct average computed once. None when a
    combination is one ``signals`` refuses: the sweep then runs them one by one."""
    fast, slow = np.asarray(fast, dtype=float), np.asarray(slow, dtype=float)
    if not (np.all(fast >= 1) and np.all(fast < slow) and np.all(fast % 1 == 0)
            and np.all(slow % 1 == 0)):
        return None
    windows, column = np.unique(np.concatenate([fast, slow]), return_inverse=True)
    close = values(data["Close"])  # once: a column lookup costs more than a shared average
    # one row per window, so its transpose is the column-major matrix cross_states reads
    averages = np.array([sma(close, int(window)) for window in windows]).T
    return cross_states(averages, averages, column[: len(fast)], column[len(fast):])
