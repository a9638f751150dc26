"""How big a position is: a fixed fraction of equity, or volatility-targeted.

``volatility_target`` scales each bar's target exposure by ``target_volatility /
realized volatility``, where realized volatility is the standard deviation (ddof=1) of the
last :data:`WINDOW` close-to-close returns up to and including bar t, annualized with the bars'
periods per year — known at bar t's close, so the scaled target decided then never looks
ahead. The scale is capped at ``max_leverage`` and is 0 until :data:`MIN_PERIODS` returns exist.
The position is sized when it is entered or its target changes (not rebalanced every bar).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

WINDOW = 60
MIN_PERIODS = 20


def scale(close: np.ndarray, sizing: str, target_volatility: float | None,
          max_leverage: float, periods_per_year: float) -> np.ndarray:
    """The multiplier applied to each bar's target exposure (1.0 for a fixed fraction); the
    settings were checked by :class:`~meridian.settings.RunSettings`."""
    if sizing == "fixed_fraction":
        return np.ones(len(close))
    returns = pd.Series(close).pct_change()
    realized = returns.rolling(WINDOW, min_periods=MIN_PERIODS).std(ddof=1).to_numpy()
    realized = realized * math.sqrt(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target_volatility / realized
    return np.where(np.isfinite(ratio), np.minimum(ratio, max_leverage), 0.0)
