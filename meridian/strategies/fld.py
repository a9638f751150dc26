# Generated from notebooks/fld.py by meridian extract — edit the notebook, not this file.
# Notebook SHA-256: e78bf9fa56ef7ae01953cce288a06fb2b5f0c9a440cd8dbc21af869f61c8223e
"""FLD with a Commitments-of-Traders filter

J. M. Hurst's **Future Line of Demarcation** is the median price (High + Low) / 2 displaced
forward by about half a cycle's wavelength. When the close crosses above the FLD the cycle has
turned up; below, it has turned down. We trade those crosses, but only in the direction the
commercial hedgers lean: their **COT index** (−1 … 1, Williams' 3-year stochastic of their net
position) must be at least `cot_threshold` for a long and at most −`cot_threshold` for a short.

Positions are decided at each bar's close and filled at the next bar's open.
"""

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

PARAMS = {
    "fld_offset": 10,
    "cot_threshold": 0.0,
    "allow_short": True,
    "fld_stop": False,
}

# The notebook's run settings other than the defaults (sweeps start from them).
SETTINGS = {}


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
