"""Positions → fills → equity and trades, then metrics. See :func:`backtest`.

Names load on first use (PEP 562): :mod:`meridian.engine.settings` is read by the CLI's checks
before anything heavy (pandas, numba) is imported.
"""

from importlib import import_module

_EXPORTS = {
    "EngineResult": "meridian.engine.backtest",
    "as_positions": "meridian.engine.backtest",
    "backtest": "meridian.engine.backtest",
    "backtest_batch": "meridian.engine.backtest",
    "Instrument": "meridian.engine.instrument",
    "RunSettings": "meridian.engine.settings",
    "METRIC_NAMES": "meridian.engine.metrics",
    "compute_metrics": "meridian.engine.metrics",
    "compute_metrics_batch": "meridian.engine.metrics",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meridian.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
