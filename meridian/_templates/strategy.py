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
# meridian:title
# # my_strategy
# meridian:end
#
# Describe the idea here: what inefficiency it trades and why it should persist.
#
# The cell tagged `export` below is the strategy. `meridian extract` copies it into your
# project's `strategies/` folder, so sweeps and the Python API use exactly this code. Positions are
# decided at each bar's close and filled at the next bar's open.

# %% tags=["parameters"]
# meridian:parameters
lookback = 20  # bars in the moving average of the placeholder rule
# meridian:end
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
# Replace the placeholder rule (long above a moving average of the close, short below) with
# yours. Keep this cell to imports, definitions and constants: it is exported as a module.
# Use helpers from `meridian.indicators` (they never look ahead) or write your own.

# %% tags=["export"]
import pandas as pd

from meridian.indicators import cross_state, sma


def signals(
    data: pd.DataFrame,
    # meridian:signature
    lookback: int = 20,
    # meridian:end
) -> pd.Series:
    """Target exposure per bar in [-1, 1], decided at the bar's close."""
    # meridian:window
    window = lookback
    # meridian:end
    position = cross_state(data["Close"], sma(data["Close"], window))
    return pd.Series(position, index=data.index, name="position")


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
viz.report(result)
