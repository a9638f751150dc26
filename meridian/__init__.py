"""Meridian: notebook-driven backtesting.

The public surface is small: :func:`meridian.api.run_backtest`, :func:`meridian.api.quick_backtest`,
:func:`meridian.engine.backtest`, :func:`meridian.data.load_ohlcv` and the ``meridian`` CLI.
"""

__version__ = "0.1.0"
