"""The contract between a strategy notebook and the registry: what a notebook glues.

:func:`meridian.viz.report` calls :func:`glue_results` when it runs inside ``meridian run``;
the pipeline (and ``meridian runs rebuild`` for runs without a record file) reads the same
names back with scrapbook. scrapbook's JSON encoder accepts only plain ``list, dict, int,
float, bool, str``, so values go through the one JSON cleaner first. Parameters are not glued:
the pipeline records the values it injected itself.
"""

from __future__ import annotations

import pandas as pd

from meridian.record import clean_json, downsample

SCRAPS = ("metrics", "equity", "trades_count", "provenance")


def glue_results(metrics: dict, equity: pd.Series, trades_count: int,
                 provenance: dict | None = None) -> None:
    """Record a run's results in the executed notebook (``scrapbook.glue``), JSON-safe:
    metrics, a downsampled equity curve, the trade count and the provenance the backtest
    recorded (data file and hash, engine settings, environment)."""
    import scrapbook as sb

    sb.glue("metrics", clean_json(metrics, "metrics"))
    sb.glue("equity", downsample(equity))
    sb.glue("trades_count", int(trades_count))
    sb.glue("provenance", clean_json(provenance or {}, "provenance"))
