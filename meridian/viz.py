"""Meridian's charts and tables: one implementation for notebooks, reports and the dashboard.

Figures are plain ``plotly.graph_objects.Figure`` objects (SVG traces, so they render in any
browser and in static HTML); tables are DataFrames formatted for reading. Nothing here
computes a metric: numbers come from :mod:`meridian.engine.metrics`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from meridian.engine.metrics import format_metric, ordered_metric_names

EQUITY_COLOR = "#1f4e79"
DRAWDOWN_COLOR = "#c0392b"
LONG_COLOR = "#1e8449"
SHORT_COLOR = "#c0392b"
TEMPLATE = "plotly_white"


def _layout(fig: go.Figure, title: str | None, height: int) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, title=title, height=height, hovermode="x unified",
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 40},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    return fig


def drawdown_of(equity: pd.Series) -> pd.Series:
    """Fall from the running peak as a fraction, for plotting when no drawdown is given."""
    peak = equity.cummax()
    return (equity / peak - 1.0).where(peak > 0, 0.0)


def plot_equity_with_drawdown(
    equity: pd.Series, drawdown: pd.Series | None = None, title: str | None = "Equity"
) -> go.Figure:
    """Equity on top, drawdown in % below, sharing the time axis (zoom one, both follow)."""
    drawdown = drawdown_of(equity) if drawdown is None else drawdown
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=equity.index, y=equity.to_numpy(), name="Equity",
                             line={"color": EQUITY_COLOR, "width": 1.6}), row=1, col=1)
    fig.add_trace(go.Scatter(x=drawdown.index, y=drawdown.to_numpy() * 100, name="Drawdown",
                             fill="tozeroy", line={"color": DRAWDOWN_COLOR, "width": 1}),
                  row=2, col=1)
    fig.update_yaxes(title_text="Equity", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown %", ticksuffix="%", row=2, col=1)
    return _layout(fig, title, 520)


def plot_price_with_signals(
    data: pd.DataFrame,
    trades: pd.DataFrame | None = None,
    lines: dict[str, pd.Series] | None = None,
    title: str | None = "Price and trades",
) -> go.Figure:
    """Close price, indicator ``lines`` (e.g. the FLD) and each trade's entry and exit."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=data.index, y=data["Close"].to_numpy(), name="Close",
                             line={"color": "#34495e", "width": 1.2}))
    for name, series in (lines or {}).items():
        fig.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), name=name,
                                 line={"width": 1.2, "dash": "dot"}))
    if trades is not None and len(trades):
        for direction, color, symbol in (("long", LONG_COLOR, "triangle-up"),
                                         ("short", SHORT_COLOR, "triangle-down")):
            side = trades[trades["direction"] == direction]
            if len(side):
                fig.add_trace(go.Scatter(
                    x=side["entry_time"], y=side["entry_price"], mode="markers",
                    name=f"{direction} entry",
                    marker={"symbol": symbol, "size": 9, "color": color},
                ))
        fig.add_trace(go.Scatter(
            x=trades["exit_time"], y=trades["exit_price"], mode="markers", name="exit",
            marker={"symbol": "x", "size": 7, "color": "#7f8c8d"},
        ))
    fig.update_yaxes(title_text="Price")
    return _layout(fig, title, 480)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month (rows: years, columns: Jan..Dec, plus Year)."""
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity.iloc[0]
    returns = (month_end / previous - 1.0).rename("return")
    table = returns.unstack(level=1).reindex(columns=range(1, 13))
    table.columns = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                     "Nov", "Dec"]
    table["Year"] = (1 + table.fillna(0)).prod(axis=1) - 1
    table.index.name = "year"
    return table


def monthly_returns_heatmap(equity: pd.Series, title: str | None = "Monthly returns") -> go.Figure:
    """Months × years heatmap of returns in %, red for losses, green for gains."""
    table = monthly_returns(equity) * 100
    values = table.to_numpy()
    limit = float(np.nanmax(np.abs(values[:, :12]))) if np.isfinite(values).any() else 1.0
    text = [[("" if np.isnan(v) else f"{v:.1f}%") for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values, x=list(table.columns), y=[str(y) for y in table.index], text=text,
        texttemplate="%{text}", colorscale="RdYlGn", zmid=0, zmin=-limit, zmax=limit,
        hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>", colorbar={"ticksuffix": "%"},
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, title, 120 + 28 * len(table))


def metrics_table(metrics: dict[str, float | None]) -> pd.DataFrame:
    """Metrics as people read them (percentages, currency, ratios to 2 decimals)."""
    names = ordered_metric_names(metrics)
    return pd.DataFrame(
        {"Value": [format_metric(n, metrics[n]) for n in names]},
        index=pd.Index([n.replace("_", " ") for n in names], name="Metric"),
    )


def trades_table(trades: pd.DataFrame) -> pd.DataFrame:
    """Closed trades formatted for reading: dates, prices, currency pnl, % return."""
    if trades.empty:
        return pd.DataFrame(columns=["entry", "exit", "direction", "size", "entry price",
                                     "exit price", "pnl", "return", "bars"])
    return pd.DataFrame({
        "entry": pd.to_datetime(trades["entry_time"]).dt.strftime("%Y-%m-%d"),
        "exit": pd.to_datetime(trades["exit_time"]).dt.strftime("%Y-%m-%d"),
        "direction": trades["direction"],
        "size": trades["size"].map("{:,.2f}".format),
        "entry price": trades["entry_price"].map("{:,.2f}".format),
        "exit price": trades["exit_price"].map("{:,.2f}".format),
        "pnl": [format_metric("expectancy", v) for v in trades["pnl"]],
        "return": [format_metric("avg_trade", v) for v in trades["return"]],
        "bars": trades["bars_held"],
    }).reset_index(drop=True)
