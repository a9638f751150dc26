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

from meridian.exceptions import EngineError

SIZINGS = ("fixed_fraction", "volatility_target")
WINDOW = 60
MIN_PERIODS = 20


def scale(close: np.ndarray, index: pd.DatetimeIndex, sizing: str,
          target_volatility: float | None, max_leverage: float) -> np.ndarray:
    """The multiplier applied to each bar's target exposure (1.0 for a fixed fraction)."""
    if sizing not in SIZINGS:
        raise EngineError(f"sizing={sizing!r} is not supported; use one of {', '.join(SIZINGS)}")
    if not (isinstance(max_leverage, int | float) and max_leverage >= 1.0):
        raise EngineError(f"max_leverage must be >= 1 (1 = no borrowing), got {max_leverage!r}")
    if sizing == "fixed_fraction":
        if target_volatility is not None:
            raise EngineError("target_volatility needs sizing='volatility_target'")
        return np.ones(len(close))
    if not (isinstance(target_volatility, int | float) and 0 < target_volatility < 10):
        raise EngineError("sizing='volatility_target' needs target_volatility, an annualized "
                          f"fraction such as 0.10, got {target_volatility!r}")
    from meridian.engine.metrics import infer_periods_per_year

    returns = pd.Series(close).pct_change()
    realized = returns.rolling(WINDOW, min_periods=MIN_PERIODS).std(ddof=1).to_numpy()
    realized = realized * math.sqrt(infer_periods_per_year(index))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target_volatility / realized
    return np.where(np.isfinite(ratio), np.minimum(ratio, max_leverage), 0.0)
