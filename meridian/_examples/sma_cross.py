# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Moving-average crossover
#
# Long after the fast simple moving average crosses above the slow one, short after it crosses
# below; flat only until the first cross. The textbook second example, and the strategy peers
# such as backtesting.py ship, so results can be compared side by side.

# %% tags=["parameters"]
fast = 10  # bars in the fast moving average
slow = 20  # bars in the slow moving average (must be larger than fast)
initial_capital = 100_000.0  # starting equity, in account currency
commission = 0.0  # fraction of traded notional paid on every fill (0.0005 = 5 basis points)
slippage = 0.0  # fraction by which every fill price moves against you
data_path = ""  # OHLCV file (CSV or Parquet); empty = the bundled SYNTHETIC sample
start = ""  # first date to trade, YYYY-MM-DD; empty = from the first bar
end = ""  # last date to trade, YYYY-MM-DD; empty = to the last bar
stop_loss = 0.0  # exit when price falls this fraction below the entry (above, short); 0 = off
take_profit = 0.0  # exit when price rises this fraction above the entry (below, short); 0 = off
trailing_stop = 0.0  # exit this fraction below the best price since entry (above, short); 0 = off
multiplier = 1.0  # contract multiplier; with it, positions are whole contracts (e.g. 50 for ES)
tick_size = 0.0  # fills are rounded to this price increment; 0 = no rounding
commission_per_contract = 0.0  # fee per contract traded, in account currency

# %%
from meridian import viz
from meridian.api import notebook_backtest
from meridian.data import load_market_data

data, data_note = load_market_data(data_path)

# %% [markdown]
# ## The strategy
#
# Tagged `export`: `meridian extract notebooks/sma_cross.py` turns this cell into your
# project's `strategies/sma_cross.py`.

# %% tags=["export"]
import numpy as np
import pandas as pd

from meridian.indicators import cross_state, cross_states, sma, values

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


# %% [markdown]
# ## Backtest and report
#
# `notebook_backtest` calls `signals` with this notebook's parameters and run settings (no list
# to keep in sync) and fills each change of position at the next bar's open, charging
# `commission` and `slippage` on every fill. `viz.report` shows the standard report: header,
# equity against buy & hold, drawdown, rolling Sharpe, monthly returns, return distribution,
# price with every trade, and the trades.

# %%
result = notebook_backtest(signals, globals(), data=data)
averages = {f"SMA({n})": pd.Series(sma(data["Close"], n), index=data.index) for n in (fast, slow)}
viz.report(result, overlays=averages)
