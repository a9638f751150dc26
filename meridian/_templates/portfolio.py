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
# # my_portfolio
# meridian:end
#
# A strategy traded on every market of a **universe** with one account. Describe the idea
# here: what it trades, why it should hold across the whole basket.
#
# `universe` names `universes/NAME.toml` in your project (or a path): its markets, their data,
# COT files and contracts, and the account's sizing (`equal_weight`, `risk_parity`,
# `volatility_target`) and rebalancing. `meridian init` ships `universes/example.toml`, four
# SYNTHETIC markets. Each market gets the strategy's target exposure from its own bars; orders
# fill at that market's next open.

# %% tags=["parameters"]
# meridian:parameters
lookback = 20  # bars in the moving average of the placeholder rule
# meridian:end
universe = "example"  # universes/NAME.toml of the project, or a .toml path
commission = 0.0  # fraction of traded notional paid on every fill (0.0005 = 5 basis points)
slippage = 0.0  # fraction by which every fill price moves against you
start = ""  # first date to trade, YYYY-MM-DD; empty = from the first bar
end = ""  # last date to trade, YYYY-MM-DD; empty = to the last bar
stop_loss = 0.0  # exit when price falls this fraction below the entry (above, short); 0 = off
trailing_stop = 0.0  # exit this fraction below the best price since entry (above, short); 0 = off

# %%
from meridian import viz
from meridian.api import notebook_backtest
from meridian.universe import load_universe

markets = load_universe(universe)
print(f"universe {markets.name}: {', '.join(m.name for m in markets.markets)}")

# %% [markdown]
# ## The strategy
#
# Replace the placeholder rule (long above a moving average of the close, short below) with
# yours. It sees one market's bars at a time (with its `COT_Index` when the universe gives a
# COT file). Keep this cell to imports, definitions and constants: it is exported as a module.

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
# `notebook_backtest` runs `signals` on every market of `universe` with this notebook's
# parameters and one account (`meridian run NAME --universe OTHER` trades another). The report:
# equity against an equal-weight buy & hold of the universe, drawdown, each market's
# contribution and metrics, the correlation of their returns, gross and net exposure and
# margin use, then the usual sections and the trades (with their market).

# %%
result = notebook_backtest(signals, globals())
viz.report(result)
