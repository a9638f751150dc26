"""Meridian: notebook-driven backtesting.

The public surface is small: :func:`meridian.api.run_backtest`, :func:`meridian.api.quick_backtest`,
:func:`meridian.engine.backtest`, :func:`meridian.data.load_ohlcv` and the ``meridian`` CLI.
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """``%load_ext meridian`` registers the ``%%backtest`` cell magic (:mod:`meridian.magic`)."""
    from meridian.magic import load_ipython_extension as load

    load(ipython)
