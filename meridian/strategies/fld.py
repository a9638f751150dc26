"""Hurst's Future Line of Demarcation with a Commitments-of-Traders filter.

The FLD is the median price (H+L)/2 displaced forward by ``fld_offset`` bars (about half the
cycle's wavelength): FLD[t] = median[t − fld_offset]. A close crossing above the FLD says the
cycle has turned up (go long), crossing below says it turned down (go short, or flat when
``allow_short`` is False). The COT filter trades with the commercial hedgers: longs are held
only while their COT index (−1..1) is ≥ ``cot_threshold``, shorts only while it is
≤ −``cot_threshold``. Without a ``COT_Index`` column in the data the filter is off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meridian.indicators import cross_state, median_price, shift, values

PARAMS = {"fld_offset": 10, "cot_threshold": 0.0, "allow_short": True}


def fld_line(data: pd.DataFrame, fld_offset: int = 10) -> pd.Series:
    """The FLD itself, for charts: median price shifted forward by ``fld_offset`` bars."""
    if fld_offset < 1:
        raise ValueError(f"fld_offset must be >= 1 (got {fld_offset}); 0 or less looks ahead")
    line = shift(median_price(data["High"], data["Low"]), fld_offset)
    return pd.Series(line, index=data.index, name=f"FLD({fld_offset})")


def signals(
    data: pd.DataFrame, fld_offset: int = 10, cot_threshold: float = 0.0, allow_short: bool = True
) -> pd.Series:
    """Target exposure per bar: +1 after a close above the FLD, −1 (or 0) after one below."""
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
