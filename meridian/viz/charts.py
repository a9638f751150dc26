"""Meridian's charts and tables: one implementation for notebooks, reports and the dashboard.

Figures are plain ``plotly.graph_objects.Figure`` objects (SVG traces, so they render in any
browser and in static HTML); tables are DataFrames formatted for reading. Nothing here
computes a metric: numbers come from :mod:`meridian.engine.metrics`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from meridian.engine.metrics import format_metric, ordered_metric_names
from meridian.record import RunRecord, series_from_dict

EQUITY_COLOR = "#1f4e79"
DRAWDOWN_COLOR = "#c0392b"
LONG_COLOR = "#1e8449"
SHORT_COLOR = "#c0392b"
TEMPLATE = "plotly_white"
EXIT_MARKERS = {"signal": ("x", "#7f8c8d"), "stop_loss": ("x-thin-open", "#c0392b"),
                "trailing_stop": ("x-thin-open", "#e67e22"),
                "take_profit": ("star", "#1e8449")}
"""How the price chart marks each kind of exit (signal exits, and ends of data, as plain x)."""


def _dates(index: pd.Index) -> list[str] | pd.Index:
    """Bar times as short text for a chart: ``2024-01-31`` for daily bars (no time of day),
    full ISO otherwise. A report carries thousands of them per trace: this halves its size."""
    if isinstance(index, pd.DatetimeIndex) and len(index) and index.tz is None \
            and (index == index.normalize()).all():
        return list(index.strftime("%Y-%m-%d"))
    return index


def _values(values, digits: int = 4) -> np.ndarray:
    """Values rounded for display (a chart needs 4 significant decimals, not 17)."""
    return np.round(np.asarray(values, dtype=float), digits)


def _layout(fig: go.Figure, title: str | None, height: int) -> go.Figure:
    """The look of every chart. The top right corner is plotly's toolbar's: the title sits at
    the top left, the legend on the left just above the plot, any buttons on its right."""
    fig.update_layout(
        template=TEMPLATE, height=height, hovermode="x unified",
        title={"text": title, "x": 0, "xanchor": "left", "xref": "container",
               "pad": {"l": 12, "t": 10},
               "y": 1, "yanchor": "top", "yref": "container"} if title else None,
        margin={"l": 60, "r": 20, "t": 64 if title else 30, "b": 40},
        legend={"orientation": "h", "y": 1, "x": 0, "xanchor": "left", "yanchor": "bottom"},
    )
    return fig


def data_summary(data: pd.DataFrame, note: str):
    """One line about the data a notebook runs on (source, bar count, span), as HTML in which
    every user-given string (a file name) is escaped text, never Markdown or markup."""
    from IPython.display import HTML

    span = (f"{len(data):,} bars from {data.index[0]:%Y-%m-%d} to {data.index[-1]:%Y-%m-%d}"
            if len(data) else "no bars")
    return HTML(f"<p><b>Data:</b> {html.escape(note)}. {span}.</p>")


def drawdown_of(equity: pd.Series) -> pd.Series:
    """Fall from the running peak as a fraction, for plotting when no drawdown is given."""
    peak = equity.cummax()
    return (equity / peak - 1.0).where(peak > 0, 0.0)


def as_series(equity: pd.Series | Mapping[str, Any] | None, name: str = "equity") -> pd.Series:
    """``equity`` as a float Series: a Series unchanged, or a registry-style
    ``{"index": [ISO 8601], "values": [float | None]}`` dict (None → NaN)."""
    return equity if isinstance(equity, pd.Series) else series_from_dict(equity, name)


def plot_equity_curve(
    equity: pd.Series | Mapping[str, Any], title: str | None = "Equity", name: str = "Equity",
    initial_capital: float | None = None,
) -> go.Figure:
    """One equity curve (a Series or a registry ``{"index", "values"}`` dict); with
    ``initial_capital``, a dotted line marks the starting equity."""
    equity = as_series(equity)
    fig = go.Figure(go.Scatter(x=_dates(equity.index), y=_values(equity, 2),
                               name=_plotly_text(name),
                               line={"color": EQUITY_COLOR, "width": 1.6}))
    if initial_capital is not None:
        fig.add_hline(y=initial_capital, line={"color": "#95a5a6", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="Equity", tickformat=",.0f")
    return _layout(fig, title, 420)


def plot_equity_with_drawdown(
    equity: pd.Series, drawdown: pd.Series | None = None, title: str | None = "Equity"
) -> go.Figure:
    """Equity on top, drawdown in % below, sharing the time axis (zoom one, both follow)."""
    drawdown = drawdown_of(equity) if drawdown is None else drawdown
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=_dates(equity.index), y=_values(equity, 2), name="Equity",
                             line={"color": EQUITY_COLOR, "width": 1.6}), row=1, col=1)
    fig.add_trace(go.Scatter(x=_dates(drawdown.index), y=_values(drawdown * 100, 3),
                             name="Drawdown",
                             fill="tozeroy", line={"color": DRAWDOWN_COLOR, "width": 1}),
                  row=2, col=1)
    fig.update_yaxes(title_text="Equity", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown %", ticksuffix="%", row=2, col=1)
    return _layout(fig, title, 520)


MANY_TRADES = 100
"""Above this many trades the price chart's markers shrink and signal exits start hidden
(a click on the legend shows them): hundreds of full-size markers hide the price."""


def plot_price_with_signals(
    data: pd.DataFrame,
    trades: pd.DataFrame | None = None,
    lines: dict[str, pd.Series] | None = None,
    title: str | None = "Price and trades",
) -> go.Figure:
    """Close price, indicator ``lines`` (e.g. the FLD) and each trade's entry and exit, stop,
    trailing-stop and target exits marked apart (see :data:`MANY_TRADES`)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=_dates(data.index), y=_values(data["Close"]), name="Close",
                             line={"color": "#34495e", "width": 1.2}))
    for name, series in (lines or {}).items():
        fig.add_trace(go.Scatter(x=_dates(series.index), y=_values(series), name=name,
                                 line={"width": 1.2, "dash": "dot"}))
    many = trades is not None and len(trades) > MANY_TRADES
    size = 9 if not many else max(4, round(9 * (MANY_TRADES / len(trades)) ** 0.5))
    if trades is not None and len(trades):
        for direction, color, symbol in (("long", LONG_COLOR, "triangle-up"),
                                         ("short", SHORT_COLOR, "triangle-down")):
            side = trades[trades["direction"] == direction]
            if len(side):
                fig.add_trace(go.Scatter(
                    x=_dates(pd.DatetimeIndex(side["entry_time"])), y=_values(side["entry_price"]),
                    mode="markers",
                    name=f"{direction} entry",
                    marker={"symbol": symbol, "size": size, "color": color,
                            "opacity": 0.7 if many else 1},
                ))
        reasons = trades["exit_reason"] if "exit_reason" in trades else \
            pd.Series("signal", index=trades.index)
        for reason, (symbol, color) in EXIT_MARKERS.items():
            exits = trades[reasons == reason] if reason != "signal" else \
                trades[~reasons.isin([r for r in EXIT_MARKERS if r != "signal"])]
            if len(exits):
                fig.add_trace(go.Scatter(
                    x=_dates(pd.DatetimeIndex(exits["exit_time"])),
                    y=_values(exits["exit_price"]), mode="markers",
                    name="exit" if reason == "signal" else reason.replace("_", " "),
                    marker={"symbol": symbol, "size": max(size - 1, 4), "color": color},
                    # with many trades a signal exit is mostly the next entry: shown on a click
                    visible="legendonly" if many and reason == "signal" else True,
                ))
    fig.update_yaxes(title_text="Price")
    return _layout(fig, title, 480)


def plot_equity_vs_benchmark(equity: pd.Series,
                             benchmark: pd.Series | Iterable[pd.Series] | None = None,
                             title: str | None = "Equity and buy & hold") -> go.Figure:
    """The strategy's equity against holding the instrument from the same start with the same
    capital (the trace named "Buy & hold") and any other benchmark (a Series each, named),
    with a linear/log scale toggle."""
    fig = go.Figure(go.Scatter(x=_dates(equity.index), y=_values(equity, 2), name="Strategy",
                               line={"color": EQUITY_COLOR, "width": 1.6}))
    others = [benchmark] if isinstance(benchmark, pd.Series) else list(benchmark or [])
    for line, color in zip(others, ("#95a5a6", "#d68910", "#7d3c98"), strict=False):
        if line is not None and len(line):
            fig.add_trace(go.Scatter(x=_dates(line.index), y=_values(line, 2),
                                     name=str(line.name or "Buy & hold"),
                                     line={"color": color, "width": 1.2}))
    fig.update_yaxes(title_text="Equity", tickformat=",.0f")
    fig.update_layout(updatemenus=[{
        "type": "buttons", "direction": "left", "x": 1, "xanchor": "right", "y": 1,
        "yanchor": "bottom", "showactive": True, "pad": {"r": 0, "t": 0, "b": 2}, "buttons": [
            {"label": "Linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
            {"label": "Log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
        ]}])
    return _layout(fig, title, 440)


def plot_drawdown(drawdown: pd.Series, title: str | None = "Drawdown",
                  periods: pd.DataFrame | None = None) -> go.Figure:
    """Fall from the running peak in %, filled to zero (the underwater chart); ``periods``
    (:func:`meridian.tearsheet.drawdown_periods`) are shaded, each from its start to its
    recovery (or the last bar)."""
    fig = go.Figure(go.Scatter(x=_dates(drawdown.index), y=_values(drawdown * 100, 3),
                               name="Drawdown",
                               fill="tozeroy", line={"color": DRAWDOWN_COLOR, "width": 1}))
    for rank, row in enumerate((periods if periods is not None else pd.DataFrame()).itertuples(),
                               start=1):
        end = row.end if pd.notna(row.end) else drawdown.index[-1]
        fig.add_vrect(x0=row.start, x1=end, fillcolor=DRAWDOWN_COLOR, opacity=0.10,
                      line_width=0, annotation_text=f"{rank}", annotation_position="top left")
    fig.update_yaxes(title_text="Drawdown %", ticksuffix="%")
    return _layout(fig, title, 260)


def drawdowns_table(periods: pd.DataFrame) -> pd.DataFrame:
    """:func:`meridian.tearsheet.drawdown_periods` for display: dates, depth in %, days."""
    day = lambda stamp: "not recovered" if pd.isna(stamp) else f"{stamp:%Y-%m-%d}"  # noqa: E731
    return pd.DataFrame({
        "#": range(1, len(periods) + 1),
        "Started": [day(v) for v in periods["start"]],
        "Valley": [day(v) for v in periods["valley"]],
        "Recovered": [day(v) for v in periods["end"]],
        "Depth": [f"{v:.2%}" for v in periods["depth"]],
        "Days": [f"{v:,}" for v in periods["days"]],
    })


def benchmark_table(metrics: Mapping[str, Any], figures: Mapping[str, float],
                    name: str) -> pd.DataFrame:
    """The strategy beside its benchmark (Sharpe, volatility, max drawdown), then beta,
    alpha, correlation and information ratio against it
    (:func:`meridian.tearsheet.relative_figures`)."""
    def number(value: Any, kind: str) -> str:
        if value is None or not np.isfinite(value):
            return "—"
        return f"{value:.2%}" if kind == "%" else f"{value:.2f}"

    rows = [("Sharpe ratio", metrics.get("sharpe_ratio"), figures.get("benchmark_sharpe_ratio"),
             ""),
            ("Volatility (annualized)", metrics.get("volatility"),
             figures.get("benchmark_volatility"), "%"),
            ("Max drawdown", metrics.get("max_drawdown"), figures.get("benchmark_max_drawdown"),
             "%"),
            ("Beta", figures.get("beta"), None, ""),
            ("Alpha (annualized)", figures.get("alpha"), None, "%"),
            ("Correlation", figures.get("correlation"), None, ""),
            ("Information ratio (per bar)", figures.get("information_ratio"), None, "")]
    return pd.DataFrame([(label, number(ours, kind), number(theirs, kind))
                         for label, ours, theirs, kind in rows],
                        columns=["", "Strategy", str(name)])


def plot_yearly_returns(table: pd.DataFrame, title: str | None = "Yearly returns") -> go.Figure:
    """Each year's return, the strategy beside the benchmark
    (:func:`meridian.tearsheet.yearly_returns`)."""
    fig = go.Figure()
    years = [str(year) for year in table.index]
    for column, color in zip(table.columns, (EQUITY_COLOR, "#95a5a6"), strict=False):
        fig.add_trace(go.Bar(x=years, y=_values(table[column] * 100, 2), marker_color=color,
                             name="Strategy" if column == "strategy" else
                             str(table.attrs.get("benchmark", "Benchmark"))))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="Return %", ticksuffix="%")
    return _layout(fig, title, 300)


def plot_rolling_beta(beta: pd.Series, title: str | None = None) -> go.Figure:
    """:func:`meridian.tearsheet.rolling_beta` over time, with the zero and one lines."""
    fig = go.Figure(go.Scatter(x=_dates(beta.index), y=_values(beta, 3), name="Rolling beta",
                               line={"color": EQUITY_COLOR, "width": 1.2}))
    for level in (0.0, 1.0):
        fig.add_hline(y=level, line={"color": "#95a5a6", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="Beta")
    return _layout(fig, title or f"Rolling {beta.name or 'beta'}", 260)


def rolling_sharpe(equity: pd.Series, window: int = 126,
                   periods_per_year: float | None = None) -> pd.Series:
    """Sharpe ratio over the trailing ``window`` bars: ``mean(r) / std(r, ddof=1) × √P`` of the
    bar returns in the window (the same definition as the Sharpe metric), NaN until the window
    is full or while returns do not vary."""
    from meridian.engine.metrics import infer_periods_per_year

    periods = periods_per_year or infer_periods_per_year(equity.index)
    returns = equity.pct_change()
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std(ddof=1)
    return (mean / std.where(std > 1e-15) * np.sqrt(periods)).rename("rolling_sharpe")


def plot_rolling_sharpe(equity: pd.Series, window: int = 126,
                        title: str | None = None) -> go.Figure:
    """:func:`rolling_sharpe` over time, with the zero line."""
    values = rolling_sharpe(equity, window)
    fig = go.Figure(go.Scatter(x=_dates(values.index), y=_values(values, 3), name="Rolling Sharpe",
                               line={"color": EQUITY_COLOR, "width": 1.2}))
    fig.add_hline(y=0.0, line={"color": "#95a5a6", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="Sharpe")
    return _layout(fig, title or f"Rolling Sharpe ({window} bars)", 260)


def plot_return_distribution(equity: pd.Series, title: str | None = "Bar returns") -> go.Figure:
    """Histogram of bar-over-bar returns in % (bars without a position excluded)."""
    returns = equity.pct_change().dropna()
    returns = returns[returns != 0] * 100
    fig = go.Figure(go.Histogram(x=_values(returns, 3), nbinsx=80, name="Returns",
                                 marker={"color": EQUITY_COLOR}))
    fig.update_xaxes(title_text="Return %", ticksuffix="%")
    fig.update_yaxes(title_text="Bars")
    return _layout(fig, title, 300)


def plot_pnl_by_exit_reason(trades: pd.DataFrame,
                            title: str | None = "P&L by exit reason") -> go.Figure | None:
    """Total profit and trade count for each way trades ended (signal, stop-loss, target,
    trailing stop, end); None when trades record no exit reason."""
    if trades.empty or "exit_reason" not in trades:
        return None
    grouped = trades.groupby("exit_reason")["pnl"].agg(["sum", "count"])
    colors = [LONG_COLOR if v >= 0 else SHORT_COLOR for v in grouped["sum"]]
    fig = go.Figure(go.Bar(x=[str(r) for r in grouped.index], y=grouped["sum"].to_numpy(),
                           marker={"color": colors}, text=[f"{n} trades" for n in grouped["count"]],
                           name="P&L"))
    fig.update_yaxes(title_text="P&L", tickformat=",.0f")
    return _layout(fig, title, 300)


TOP_MARKETS = 8
"""Markets drawn one by one in portfolio charts; the rest are summed as "others"."""


def _top_columns(frame: pd.DataFrame, weight: pd.Series, top: int = TOP_MARKETS) -> pd.DataFrame:
    """``frame``'s ``top`` columns by ``weight`` (absolute), the rest summed as "others"."""
    if frame.shape[1] <= top + 1:
        return frame
    keep = weight.abs().sort_values(ascending=False).index[:top]
    rest = [name for name in frame.columns if name not in keep]
    return pd.concat([frame[list(keep)], frame[rest].sum(axis=1).rename(f"{len(rest)} others")],
                     axis=1)


def plot_market_pnl(pnl: pd.DataFrame, costs: pd.DataFrame,
                    title: str | None = "Contribution: P&L by market, net of costs") -> go.Figure:
    """Each market's cumulative P&L (after its fees and financing) in a portfolio run; beyond
    :data:`TOP_MARKETS` markets the smallest contributors are summed as "others"."""
    net = (pnl - costs).cumsum()
    net = _top_columns(net, net.iloc[-1] if len(net) else pd.Series(dtype=float))
    fig = go.Figure()
    for market in net.columns:
        fig.add_trace(go.Scatter(x=_dates(net.index), y=_values(net[market].to_numpy(), 2),
                                 mode="lines", name=str(market)))
    fig.update_yaxes(title_text="P&L", tickformat=",.0f")
    return _layout(fig, title, 360)


def plot_contribution(markets: Mapping[str, Mapping[str, Any]],
                      title: str | None = "Contribution to the total return") -> go.Figure:
    """Each market's net P&L as a fraction of the initial capital (they add up to the total
    return), largest first."""
    shares = pd.Series({name: row.get("return") or 0.0 for name, row in markets.items()})
    shares = shares.reindex(shares.abs().sort_values(ascending=False).index)
    colors = [LONG_COLOR if v >= 0 else SHORT_COLOR for v in shares]
    fig = go.Figure(go.Bar(x=[str(n) for n in shares.index], y=_values(shares.to_numpy(), 5),
                           marker={"color": colors}, name="return"))
    fig.update_yaxes(title_text="share of capital", tickformat=".1%")
    return _layout(fig, title, 320)


def plot_correlation(correlation: pd.DataFrame,
                     title: str | None = "Correlation of market returns") -> go.Figure:
    """Heatmap of the markets' return correlations (−1 blue … +1 red)."""
    names = [str(n) for n in correlation.columns]
    fig = go.Figure(go.Heatmap(z=np.round(correlation.to_numpy(), 3), x=names, y=names,
                               zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               hovertemplate="%{y} / %{x}: %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, max(320, 28 * len(names) + 140))


def plot_exposure(exposure: pd.DataFrame,
                  title: str | None = "Exposure and margin use") -> go.Figure:
    """Gross and net exposure and margin in use, as fractions of equity, over time."""
    fig = go.Figure()
    for column, label, color in (("gross", "gross exposure", EQUITY_COLOR),
                                 ("net", "net exposure", "#7f8c8d"),
                                 ("margin", "margin / equity", DRAWDOWN_COLOR)):
        fig.add_trace(go.Scatter(x=_dates(exposure.index), y=_values(exposure[column], 4),
                                 mode="lines", name=label, line={"color": color, "width": 1.2}))
    fig.update_yaxes(title_text="fraction of equity", tickformat=".0%")
    return _layout(fig, title, 320)


def markets_table(markets: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """A portfolio run's per-market metrics formatted for reading (see
    :meth:`~meridian.engine.portfolio.PortfolioResult.market_summary`)."""
    def percent(value):
        return "–" if value is None or value != value else f"{value:.1%}"

    rows = []
    for name, row in markets.items():
        sharpe = row.get("sharpe")
        rows.append({"market": name, "trades": int(row.get("trades") or 0),
                     "win rate": percent(row.get("win_rate")),
                     "P&L": f"{row.get('pnl') or 0:,.2f}", "costs": f"{row.get('costs') or 0:,.2f}",
                     "share of P&L": percent(row.get("contribution")),
                     "return contribution": percent(row.get("return")),
                     "Sharpe": "–" if sharpe is None or sharpe != sharpe else f"{sharpe:.2f}",
                     "exposure": percent(row.get("exposure")),
                     "margin-cut orders": int(row.get("margin_blocked") or 0)})
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------- runs side by side


def _plotly_text(text: str) -> str:
    """``text`` for a Plotly label: Plotly renders a subset of HTML in names and titles
    (``<b>``, ``<a href>``, entities), so user text is entity-escaped to show as typed."""
    return html.escape(str(text), quote=False)


def format_param_value(value: Any) -> str:
    """A parameter value as shown in labels: strings bare (``""`` when empty), others repr."""
    if isinstance(value, str):
        return value if value else '""'
    return repr(value)


def format_params(params: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """``fld_offset=15, allow_short=False``: every parameter (empty strings, i.e. unset paths,
    left out), or exactly ``keys`` (those the run has) in that order."""
    if keys is None:
        pairs = [(k, v) for k, v in params.items() if v != ""]
    else:
        pairs = [(k, params[k]) for k in keys if k in params]
    return ", ".join(f"{k}={format_param_value(v)}" for k, v in pairs)


def differing_params(param_sets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Parameter names whose value (as :func:`format_param_value` shows it, so 1 and 1.0
    differ) is not the same in every set that has them, in first-seen order. A name only one
    set has does not count: the strategy name already tells those runs apart."""
    shown: dict[str, set[str]] = {}
    for params in param_sets:
        for key, value in params.items():
            shown.setdefault(key, set()).add(format_param_value(value))
    return [key for key, values in shown.items() if len(values) > 1]


def run_labels(runs: Iterable[Any]) -> list[str]:
    """One legend label per run: its strategy (or name) and the parameters that differ between
    ``runs``; the 8-character id prefix is added where two labels would otherwise be equal."""
    return _labels([RunRecord.of(run) for run in runs])


def _labels(records: list[RunRecord]) -> list[str]:
    keys = differing_params(r.params for r in records)
    labels = []
    for record in records:
        head = f"{record.name} ({record.strategy_name})" if record.name \
            else record.strategy_name
        labels.append(" ".join(filter(None, [head, format_params(record.params, keys)])))
    counts = {label: labels.count(label) for label in labels}
    return [f"{label} · {record.run_id[:8]}" if counts[label] > 1 else label
            for label, record in zip(labels, records, strict=True)]


def normalized_equity(equity: pd.Series) -> pd.Series:
    """``equity`` divided by its first finite non-zero value (growth of 1.0); empty when there
    is none, e.g. a failed run."""
    equity = equity.dropna()
    usable = equity[(equity != 0) & np.isfinite(equity)]
    return equity.iloc[0:0] if usable.empty else equity / usable.iloc[0]


def comparison_chart(runs: Iterable[Any], title: str | None = "Equity, normalized to 1.0"
                     ) -> go.Figure:
    """Several runs' equity curves on one chart, each divided by its starting value.

    ``runs`` are registry records (``meridian.storage``), ``to_dict()`` dicts or
    BacktestResults. The legend names each run's strategy and the parameters that differ
    between the runs compared. Runs without an equity curve (failed runs) are left out.
    """
    records = [RunRecord.of(run) for run in runs]
    fig = go.Figure()
    for record, label in zip(records, _labels(records), strict=True):
        curve = normalized_equity(record.equity)
        if curve.empty:
            continue
        fig.add_trace(go.Scatter(
            x=curve.index, y=curve.to_numpy(), name=_plotly_text(label), mode="lines",
            line={"width": 1.6}, hovertemplate="%{y:.3f}",
        ))
    fig.add_hline(y=1.0, line={"color": "#95a5a6", "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="Growth of 1.0", tickformat=".2f")
    _layout(fig, title, 480)
    fig.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.12,
                              "yanchor": "top"}, margin={"b": 40})
    return fig


def _ipython():
    """The running IPython kernel's shell, None in plain Python or a terminal IPython."""
    import sys

    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


# --------------------------------------------------------------------------- sweeps


SCATTER_POINTS = 5_000
"""Points an in-sample vs out-of-sample scatter draws at most (evenly over the grid)."""


def in_vs_out_of_sample(inside: pd.Series, outside: pd.Series, metric: str,
                        title: str | None = None) -> go.Figure:
    """Every combination's metric before the split (x) against after it (y), with the
    diagonal: over-fitting shows as a cloud that does not follow it."""
    label = metric.replace("_", " ")
    inside, outside = _values(inside), _values(outside)
    shown = np.flatnonzero(np.isfinite(inside) | np.isfinite(outside))
    if len(shown) > SCATTER_POINTS:  # SVG (WebGL needs eval, which reports forbid): sampled
        shown = shown[np.linspace(0, len(shown) - 1, SCATTER_POINTS).astype(int)]
        title = title or (f"{label}: in sample vs out of sample ({SCATTER_POINTS:,} of "
                          f"{len(inside):,} combinations)")
    fig = go.Figure(go.Scatter(x=inside[shown], y=outside[shown], mode="markers",
                               name="combinations",
                               marker={"size": 5, "color": EQUITY_COLOR, "opacity": 0.5}))
    both = np.concatenate([inside[np.isfinite(inside)], outside[np.isfinite(outside)]])
    if len(both):
        low, high = float(both.min()), float(both.max())
        fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="same",
                                 line={"color": "#95a5a6", "dash": "dot"}))
    fig.update_xaxes(title_text=f"{label} in sample")
    fig.update_yaxes(title_text=f"{label} out of sample")
    return _layout(fig, title or f"{label}: in sample vs out of sample", 420)


def walk_forward_chart(stitched: Any, best: Any | None, best_label: str) -> go.Figure:
    """The stitched out-of-sample equity (each window traded with its own training choice)
    against the in-sample best (one choice made with hindsight on all the in-sample data,
    traded over the same span): the gap is what choosing without hindsight costs."""
    fig = go.Figure()
    curves = [(stitched, "walk-forward (stitched out of sample)", EQUITY_COLOR)]
    if best is not None:
        curves.append((best, f"in-sample best ({best_label or 'defaults'})", "#95a5a6"))
    for curve, name, color in curves:
        series = as_series(curve)
        fig.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), mode="lines", name=name,
                                 line={"color": color, "width": 1.6}))
    fig.update_yaxes(title_text="Equity")
    return _layout(fig, "Stitched out-of-sample equity against the in-sample best", 420)


def sweep_chart(table: pd.DataFrame, axes: list[str], metric: str) -> go.Figure | None:
    """A sweep's metric over its grid: a line for one parameter, a heatmap for two (rows and
    columns are the two parameters' values); None for more (the report shows the best table)."""
    if table.empty or len(axes) not in (1, 2):
        return None
    label = metric.replace("_", " ")
    if len(axes) == 1:
        (name,) = axes
        ordered = table.sort_values(name)
        fig = go.Figure(go.Scatter(x=ordered[name], y=ordered[metric], mode="lines+markers",
                                   name=label, line={"color": EQUITY_COLOR}))
        fig.update_xaxes(title_text=name)
        fig.update_yaxes(title_text=label)
        return _layout(fig, f"{label} by {name}", 420)
    x, y = axes
    grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="first", dropna=False)
    fig = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=[format_param_value(v) for v in grid.columns],
        y=[format_param_value(v) for v in grid.index], colorscale="RdYlGn",
        colorbar={"title": {"text": label}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{label}=%{{z:.3f}}<extra></extra>",
    ))
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    return _layout(fig, f"{label} over {x} × {y}", 160 + 22 * min(len(grid), 30))
