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
# # FLD with a Commitments-of-Traders filter
#
# J. M. Hurst's **Future Line of Demarcation** is the median price (High + Low) / 2 displaced
# forward by about half a cycle's wavelength. When the close crosses above the FLD the cycle has
# turned up; below, it has turned down. We trade those crosses, but only in the direction the
# commercial hedgers lean: their **COT index** (−1 … 1, Williams' 3-year stochastic of their net
# position) must be at least `cot_threshold` for a long and at most −`cot_threshold` for a short.
#
# Positions are decided at each bar's close and filled at the next bar's open.

# %% tags=["parameters"]
fld_offset = 10  # bars the median price is displaced forward (about half the cycle's wavelength)
cot_threshold = 0.0  # commercials' COT index (-1..1) needed: longs when >= it, shorts when <= -it
allow_short = True  # False: stand aside instead of going short after a cross below the FLD
initial_capital = 100_000.0  # starting equity, in account currency
commission = 0.0  # fraction of traded notional paid on every fill (0.0005 = 5 basis points)
slippage = 0.0  # fraction by which every fill price moves against you
data_path = ""  # OHLCV file (CSV or Parquet); empty = the bundled SYNTHETIC sample
cot_path = ""  # CFTC legacy COT file; empty = sample COT with the sample prices, none otherwise
cot_market = ""  # market name or code to pick in a multi-market COT file, e.g. "CRUDE OIL"
start = ""  # first date to trade, YYYY-MM-DD; empty = from the first bar
end = ""  # last date to trade, YYYY-MM-DD; empty = to the last bar
stop_loss = 0.0  # exit when price falls this fraction below the entry (above, short); 0 = off
take_profit = 0.0  # exit when price rises this fraction above the entry (below, short); 0 = off
trailing_stop = 0.0  # exit this fraction below the best price since entry (above, short); 0 = off
multiplier = 1.0  # contract multiplier; with it, positions are whole contracts (e.g. 50 for ES)
tick_size = 0.0  # fills are rounded to this price increment; 0 = no rounding
commission_per_contract = 0.0  # fee per contract traded, in account currency
fld_stop = False  # True: the FLD line itself is the stop, as Hurst traders place it

# %%
from meridian import viz
from meridian.api import notebook_backtest
from meridian.data import load_market_data

data, data_note = load_market_data(data_path, cot_path, cot_market)

# %% [markdown]
# ## The strategy
#
# This cell is the strategy: `meridian extract notebooks/fld.py` copies it (it is tagged
# `export`) into your project's `strategies/fld.py`, which sweeps and the Python API import. Every
# helper it uses reads only bars at or before t, so a position decided at bar t's close never
# looks ahead.

# %% tags=["export"]
import numpy as np
import pandas as pd

from meridian.indicators import (
    cross_state,
    cross_states,
    gated_states,
    median_price,
    shift,
    values,
)

# Checked before any run, sweep or backtest starts (a value outside is refused in one line).
PARAM_RANGES = {"fld_offset": "[1, inf)", "cot_threshold": "[-1, 1]"}
# Parameters counted in bars: each must leave the data 20 bars to trade.
WINDOWS = ("fld_offset",)


def fld_line(data: pd.DataFrame, fld_offset: int = 10) -> pd.Series:
    """The FLD itself, for charts: median price shifted forward by ``fld_offset`` bars."""
    if fld_offset < 1:
        raise ValueError(f"fld_offset must be >= 1 (got {fld_offset}); 0 or less looks ahead")
    line = shift(median_price(data["High"], data["Low"]), fld_offset)
    return pd.Series(line, index=data.index, name=f"FLD({fld_offset})")


def signals(
    data: pd.DataFrame, fld_offset: int = 10, cot_threshold: float = 0.0, allow_short: bool = True
) -> pd.Series:
    """Target exposure per bar: +1 after a close above the FLD, -1 (or 0) after one below.

    FLD[t] = median[t - fld_offset] with median = (High + Low) / 2. Longs are held only while
    the COT index is >= cot_threshold, shorts only while it is <= -cot_threshold; without a
    COT_Index column in the data the filter is off.
    """
    if fld_offset < 1:
        raise ValueError(f"fld_offset must be >= 1 (got {fld_offset}); 0 or less looks ahead")
    fld = shift(median_price(data["High"], data["Low"]), fld_offset)
    position = cross_state(data["Close"], fld)
    if not allow_short:
        position = np.maximum(position, 0.0)
    if "COT_Index" in data.columns:
        cot = values(data["COT_Index"])
        with np.errstate(invalid="ignore"):
            allowed = np.where(position > 0, cot >= cot_threshold, cot <= -cot_threshold)
        position = np.where(allowed, position, 0.0)
    return pd.Series(position, index=data.index, name="position")


def signals_batch(data: pd.DataFrame, fld_offset: np.ndarray, cot_threshold: np.ndarray,
                  allow_short: np.ndarray, fld_stop: np.ndarray) -> np.ndarray | None:
    """``signals`` for many combinations at once, for sweeps (one value per combination in
    each array): bars × combinations, one FLD per distinct offset, the COT filter applied to
    all combinations in one pass. None when a combination needs the one-by-one path (an FLD
    stop, or a value ``signals`` refuses)."""
    offset = np.asarray(fld_offset, dtype=float)
    if np.any(np.asarray(fld_stop, dtype=bool)) or not np.all((offset >= 1) & (offset % 1 == 0)):
        return None
    offsets, column = np.unique(offset, return_inverse=True)
    median = median_price(data["High"], data["Low"])
    lines = np.column_stack([shift(median, int(o)) for o in offsets])
    states = cross_states(values(data["Close"]), lines, np.zeros(len(offsets), dtype=int),
                          np.arange(len(offsets)))
    threshold = np.asarray(cot_threshold, dtype=float)
    shorts = np.asarray(allow_short, dtype=bool)
    cot = values(data["COT_Index"]) if "COT_Index" in data.columns else None
    return gated_states(states, column, cot, threshold, np.where(shorts, -threshold, np.nan))


def exits(data: pd.DataFrame, fld_offset: int = 10, fld_stop: bool = False) -> dict:
    """Price levels the engine exits at: with ``fld_stop`` the FLD line itself is the stop, as
    Hurst traders place it (the level decided at bar t's close guards bar t+1)."""
    return {"stop_loss": fld_line(data, fld_offset)} if fld_stop else {}


# %% [markdown]
# ## Backtest and report
#
# `notebook_backtest` calls `signals` and `exits` with this notebook's parameters and run
# settings (no list to keep in sync) and fills each change of position at the next bar's open,
# charging `commission` and `slippage` on every fill, with the stops, target and contract set
# above. With `fld_stop`, the FLD line is the stop: a long exits when the Low touches it.
# Sweeps of the extracted module do exactly the same, with these settings.
# `viz.report` shows the standard report: header, equity against buy & hold, drawdown, rolling
# Sharpe, monthly returns, return distribution, price with every trade (stop and target exits
# marked), P&L by exit reason, and the trades.

# %%
fld = fld_line(data, fld_offset)
result = notebook_backtest(signals, globals(), data=data, exits=exits)
viz.report(result, overlays={f"FLD({fld_offset})": fld})
