"""The contract between a strategy notebook and the registry: what a notebook glues.

A notebook calls :func:`glue_results` once at the end; the pipeline (and ``meridian runs
rebuild``) reads the same names back with scrapbook. scrapbook's JSON encoder accepts only
plain ``list, dict, int, float, bool, str``, so numpy scalars and NaN are converted here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SCRAPS = ("metrics", "params", "equity", "trades_count")
EQUITY_POINTS = 500


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/inf as None (JSON's null)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def downsample(equity: pd.Series, points: int = EQUITY_POINTS) -> dict[str, list]:
    """At most ``points`` evenly spaced samples of a curve, first and last bar kept, as
    ``{"index": [ISO 8601], "values": [float]}`` — enough to draw it, small enough to store."""
    if len(equity) > points:
        positions = np.unique(np.linspace(0, len(equity) - 1, points).round().astype(int))
        equity = equity.iloc[positions]
    return {"index": [ts.isoformat() for ts in equity.index],
            "values": [float(v) for v in equity.to_numpy()]}


def glue_results(metrics: dict, params: dict, equity: pd.Series, trades_count: int) -> None:
    """Record a run's results in the executed notebook (``scrapbook.glue``), JSON-safe."""
    import scrapbook as sb

    sb.glue("metrics", plain(metrics))
    sb.glue("params", plain(params))
    sb.glue("equity", downsample(equity))
    sb.glue("trades_count", int(trades_count))
