"""Meridian: notebook-driven backtesting.

The public API, importable from the package root::

    import meridian
    result = meridian.run_backtest("fld", {"fld_offset": 15}, initial_capital=100_000)
    print(result.metrics["sharpe_ratio"])

Names are loaded on first use (PEP 562), so ``import meridian`` — and the ``meridian`` CLI —
stay fast; the modules they come from are :mod:`meridian.api`, :mod:`meridian.engine`,
:mod:`meridian.data`, :mod:`meridian.storage`, :mod:`meridian.viz` and :mod:`meridian.project`.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "run_backtest": "meridian.api",
    "run_portfolio": "meridian.api",
    "load_universe": "meridian.universe",
    "quick_backtest": "meridian.api",
    "backtest_signals": "meridian.api",
    "BacktestResult": "meridian.api",
    "backtest": "meridian.engine",
    "compute_metrics": "meridian.engine",
    "RunSettings": "meridian.settings",
    "load_ohlcv": "meridian.data",
    "load_market_data": "meridian.data",
    "save_run": "meridian.storage",
    "load_all_runs": "meridian.storage",
    "load_run_by_id": "meridian.storage",
    "backtest_summary": "meridian.viz",
    "list_strategies": "meridian.strategies",
    "find_project": "meridian.project",
}

__all__ = [*_EXPORTS, "load_ipython_extension"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meridian' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython) -> None:
    """``%load_ext meridian`` registers the ``%%backtest`` cell magic (:mod:`meridian.magic`)."""
    from meridian.magic import load_ipython_extension as load

    load(ipython)
