# Generated from notebooks/sma_cross.py by meridian extract — edit the notebook, not this file.
# Notebook SHA-256: 2f54fb432cef89537ad359b6ff82f5c7b5b4a655099fef5eab4f1f62af70a7f8
"""Moving-average crossover

Long after the fast simple moving average crosses above the slow one, short after it crosses
below; flat only until the first cross. The textbook second example, and the strategy peers
such as backtesting.py ship, so results can be compared side by side.
"""

import pandas as pd

from meridian.indicators import cross_state, sma

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
