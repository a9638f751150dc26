"""Positions → fills → equity and trades, then metrics. See :func:`backtest`."""

from meridian.engine.backtest import EngineResult, as_positions, backtest, backtest_batch
from meridian.engine.instrument import Instrument
from meridian.engine.metrics import METRIC_NAMES, compute_metrics, compute_metrics_batch

__all__ = [
    "METRIC_NAMES", "EngineResult", "Instrument", "as_positions", "backtest", "backtest_batch",
    "compute_metrics", "compute_metrics_batch",
]
