"""The seed's ``dashboard.components.backtest_viz``: the same functions as :mod:`meridian.viz`
(one implementation; this module only gives them the seed's import path)."""

from meridian.viz import (
    backtest_summary,
    comparison_chart,
    metrics_table,
    monthly_returns_heatmap,
    plot_equity_curve,
    plot_equity_with_drawdown,
    plot_price_with_signals,
    trades_table,
)

__all__ = [
    "backtest_summary", "comparison_chart", "metrics_table", "monthly_returns_heatmap",
    "plot_equity_curve", "plot_equity_with_drawdown", "plot_price_with_signals", "trades_table",
]
