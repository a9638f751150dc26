# Generated from notebooks/sma_cross.py by meridian extract — edit the notebook, not this file.
# Notebook SHA-256: 69f58b61d9901a2ad5b376c3ecb5a9d10d61a53493afe4400611b953b9d27d2b
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
# Parameters counted in bars: each must leave the data 20 bars to trade.
WINDOWS = ("fast", "slow")


def signals(data: pd.DataFrame, fast: int = 10, slow: int = 20) -> pd.Series:
    """+1 / -1 after the last cross of SMA(fast) over SMA(slow); 0 before the first cross."""
    if not 1 <= fast < slow:
        raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
    position = cross_state(sma(data["Close"], fast), sma(data["Close"], slow))
    return pd.Series(position, index=data.index, name="position")
