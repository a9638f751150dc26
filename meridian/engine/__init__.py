"""Positions → fills → equity and trades, then metrics. See :func:`backtest`."""

from meridian.engine.backtest import EngineResult, backtest
from meridian.engine.metrics import METRIC_NAMES, compute_metrics

__all__ = ["METRIC_NAMES", "EngineResult", "backtest", "compute_metrics"]
