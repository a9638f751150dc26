"""The report layout behind :func:`meridian.viz.report`: sections, and how they are shown.

A report is a list of sections — HTML (the header, tables) or Plotly figures — shown in order.
In a notebook each section is one output, tagged ``{"meridian_report": <section>}`` in its
output metadata, so the HTML export (:mod:`meridian.pipeline.export`) can lift the whole report
to the top of the page, above the (folded) code. Inside ``meridian run`` the report also glues
the run's record for the registry (the pipeline writes ``trades.csv`` beside the report).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from meridian._files import write_atomic
from meridian.engine.metrics import KEY_METRICS, format_metric, metric_info
from meridian.pages import CHART_LOADER, chart_html, lock_down, plotly_src
from meridian.record import RunRecord
from meridian.viz import charts as viz

RUN_DIR_VARIABLE = "MERIDIAN_RUN_DIR"
"""Set by ``meridian run`` for its kernel: where the report's companion files go."""
CHANGED_VARIABLE = "MERIDIAN_CHANGED"
"""Set by ``meridian run``: the parameters given on the command line (comma-separated)."""
METADATA_KEY = "meridian_report"
TRADES_SHOWN = 20
CARDS = (*KEY_METRICS, "sortino_ratio", "volatility", "buy_and_hold_return")

STYLE = """
.mr-header { font-family: system-ui, sans-serif; color: #1d2733; }
.mr-header h1 { font-size: 1.45rem; margin: 0 0 .2rem; }
.mr-header .mr-sub { color: #5b6776; margin: 0 0 .8rem; font-size: .9rem; }
.mr-cards { display: flex; flex-wrap: wrap; gap: .5rem; margin: .6rem 0; }
.mr-card { border: 1px solid #dde3ea; border-radius: 6px; padding: .4rem .7rem; min-width: 7rem; }
.mr-card .mr-label { font-size: .72rem; color: #5b6776; text-transform: uppercase; }
.mr-card .mr-value { font-size: 1.15rem; font-variant-numeric: tabular-nums; }
.mr-card.good .mr-value { color: #1e8449; } .mr-card.bad .mr-value { color: #c0392b; }
.mr-facts { border-collapse: collapse; font-size: .85rem; margin: .4rem 0; }
.mr-facts th, .mr-facts td { text-align: left !important; vertical-align: top;
  padding: .15rem .8rem .15rem 0 !important; background: none !important; }
.mr-facts th { color: #5b6776; font-weight: 500; white-space: nowrap; }
.mr-facts td { word-break: break-all; }
.mr-params { display: flex; flex-wrap: wrap; gap: .3rem; }
.mr-param { border-radius: 4px; padding: .05rem .4rem; background: #f1f4f7; font-size: .82rem; }
.mr-param.changed { background: #fdebc8; font-weight: 600; }
.mr-section { font-family: system-ui, sans-serif; margin: 1rem 0 .3rem; font-size: 1.05rem; }
"""


@dataclass
class Section:
    """One part of a report: ``html`` text or a Plotly ``figure``."""

    name: str
    html: str = ""
    figure: go.Figure | None = None


@dataclass
class Report:
    """The sections of one run's report, in order."""

    run_id: str
    sections: list[Section] = field(default_factory=list)
    trades: pd.DataFrame | None = None
    record: Any = None  # the RunRecord shown, glued inside ``meridian run``
    shown_in_cell: int | None = None
    lifted: bool = True
    """Whether the HTML export lifts the sections to the top of the page (a run's report);
    a :func:`backtest_summary` stays where its cell shows it."""

    def section(self, name: str) -> Section | None:
        """The section called ``name`` (``"equity"``, ``"trades"``…), None without one."""
        return next((section for section in self.sections if section.name == name), None)

    def show(self) -> None:
        """Display every section (in a notebook); inside ``meridian run`` also glue the
        run's record (the pipeline files it and writes ``trades.csv``). Shown once per cell:
        ``viz.report(result)`` as a cell's last line displays it, and the returned object
        must not show it twice."""
        from IPython import get_ipython
        from IPython.display import display

        cell = getattr(get_ipython(), "execution_count", None)
        if cell is not None and cell == self.shown_in_cell:
            return
        self.shown_in_cell = cell

        for section in self.sections:
            metadata = {METADATA_KEY: section.name} if self.lifted else {}
            if section.figure is not None:
                display(_figure_bundle(section.figure), raw=True, metadata=metadata)
            else:
                display({"text/html": section.html, "text/plain": f"[{section.name}]"},
                        raw=True, metadata=metadata)
        if os.environ.get(RUN_DIR_VARIABLE) and self.record is not None:
            self.record.glue()  # inside `meridian run`: the run's one record, for the pipeline

    def _ipython_display_(self) -> None:
        self.show()

    def html(self) -> str:
        """The whole report as one HTML fragment (charts need plotly.js and
        :data:`~meridian.pages.CHART_LOADER` on the page)."""
        parts = []
        for section in self.sections:
            if section.figure is not None:
                parts.append(chart_html(section.figure))
            else:
                parts.append(section.html)
        return "\n".join(parts)


def _figure_bundle(figure: go.Figure) -> dict[str, Any]:
    """Plotly's own JSON: what JupyterLab and VS Code render, and what the HTML export turns
    into a live chart (``meridian report NOTEBOOK.ipynb`` for any notebook)."""
    return {
        "application/vnd.plotly.v1+json": json.loads(figure.to_json()),
        "text/plain": f"<Figure: {figure.layout.title.text or 'chart'}>",
    }


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _header(result: Any, changed: set[str]) -> str:
    metrics = result.metrics or {}
    cards = []
    for name in CARDS:
        if name not in metrics:
            continue
        value = metrics[name]
        info = metric_info(name)
        tone = ""
        if value is not None and value == value and info.better == "higher" \
                and name not in ("max_drawdown", "final_equity"):
            tone = " good" if value > 0 else " bad"
        cards.append(f'<div class="mr-card{tone}"><div class="mr-label">{_esc(info.label)}'
                     f'</div><div class="mr-value">{_esc(format_metric(name, value))}</div>'
                     "</div>")
    params = "".join(
        f'<span class="mr-param{" changed" if name in changed else ""}" '
        f'title="{"set for this run" if name in changed else "default"}">'
        f"{_esc(name)}={_esc(viz.format_param_value(value))}</span>"
        for name, value in (result.params or {}).items())
    data = result.data or {}
    span = (f"{data.get('first', '')[:10]} → {data.get('last', '')[:10]}, "
            f"{data.get('bars', 0):,} bars" if data.get("bars") else "")
    source = data.get("path") or data.get("source") or "—"
    if data.get("periods_per_year"):  # how the run annualizes, and whether it was inferred
        how = "set" if (result.settings or {}).get("periods_per_year") else "inferred"
        span += (f" · {data.get('frequency', '')} bars, {float(data['periods_per_year']):,.0f} "
                 f"a year ({how})")
    facts = [("Run", result.run_id), ("Strategy", result.strategy_name),
             ("Time (UTC)", str(result.timestamp).replace("T", " ")[:19]),
             ("Data", source), ("Span", span), ("Data SHA-256", data.get("sha256", "—"))]
    universe = getattr(result, "universe", None)
    if universe:  # a portfolio: the universe file, then each market's file and span
        markets = data.get("markets") or {}
        firsts = [m.get("first") or "" for m in markets.values() if m.get("first")]
        lasts = [m.get("last") or "" for m in markets.values() if m.get("last")]
        span = f"{min(firsts)[:10]} → {max(lasts)[:10]}" if firsts and lasts else ""
        facts[3:] = [("Universe", f"{universe.get('name')} ({universe.get('path')})"),
                     ("Span", span), ("Universe SHA-256", universe.get("sha256", "—")),
                     *((f"Market {name}", f"{m.get('path', '—')} · {m.get('bars', 0):,} bars · "
                        f"SHA-256 {str(m.get('sha256', '—'))[:12]}…")
                       for name, m in markets.items())]
    if data.get("note"):
        facts.insert(4, ("Note", data["note"]))
    if data.get("cot_path"):
        facts.insert(4, ("COT", data["cot_path"]))
    settings = result.settings or {}
    if settings:
        facts.append(("Settings", ", ".join(f"{k}={viz.format_param_value(v)}"
                                            for k, v in settings.items() if v not in ("", None))))
    if result.status != "success":
        facts.append(("Status", f"{result.status}: {result.error}"))
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in facts)
    return (f"<style>{STYLE}</style><div class=\"mr-header\" data-run-id=\"{_esc(result.run_id)}\">"
            f"<h1>{_esc(result.strategy_name)} · run {_esc(result.run_id[:8])}</h1>"
            f'<p class="mr-sub">{_esc(viz.format_params(result.params or {}))}</p>'
            f'<div class="mr-cards">{"".join(cards)}</div>'
            f'<div class="mr-params">{params}</div>'
            f'<table class="mr-facts">{rows}</table></div>')


WORST = 5  # drawdowns shaded and listed


def _title(text: str) -> Section:
    return Section(f"title:{text}", f'<h2 class="mr-section">{_esc(text)}</h2>')


def _benchmark(result: Any) -> pd.Series | None:
    prices = getattr(result, "prices", None)
    equity = result.equity
    portfolio = getattr(result, "portfolio", None)
    if portfolio is not None and not equity.empty:  # the universe's equal-weight buy & hold
        growth = pd.Series(portfolio.engine.close, index=portfolio.engine.index)
        capital = (result.settings or {}).get("initial_capital") or float(equity.iloc[0])
        return (growth / growth.iloc[0] * capital).rename("Buy & hold, equal weight")
    if prices is None or equity.empty or "Close" not in prices:
        return None
    close = prices["Close"].reindex(equity.index)
    capital = (result.settings or {}).get("initial_capital") or float(equity.iloc[0])
    return (close / close.iloc[0] * capital).rename("Buy & hold")


def _user_benchmark(result: Any) -> tuple[pd.Series | None, str]:
    """The run's own benchmark file (the ``benchmark`` setting) as equity on the run's bars,
    from the same capital, and a note when it cannot be read any more."""
    from meridian.exceptions import DataError
    from meridian.tearsheet import aligned, load_benchmark

    path = (result.settings or {}).get("benchmark")
    if not path or result.equity.empty:
        return None, ""
    try:
        prices = aligned(load_benchmark(path), result.equity.index)
    except (DataError, OSError) as error:
        return None, f"benchmark {path} could not be read: {error}"
    first = prices.first_valid_index()
    if first is None:
        return None, f"benchmark {path} has no price on or before the run's last bar"
    capital = (result.settings or {}).get("initial_capital") or float(result.equity.iloc[0])
    return (prices / prices[first] * capital).rename(f"{prices.name} (benchmark)"), ""


def _tear_sheet(result: Any, benchmark: pd.Series | None) -> list[Section]:
    """The strategy against its benchmark (the user's file, else buy & hold): figures, the
    worst drawdowns, yearly returns and rolling beta (:mod:`meridian.tearsheet`)."""
    from meridian import tearsheet

    equity = result.equity
    sections = []
    if benchmark is not None:
        name = str(benchmark.name)
        periods = (result.data or {}).get("periods_per_year") or None
        if periods is None:
            from meridian.engine.metrics import infer_periods_per_year

            periods = infer_periods_per_year(equity.index)
        figures = tearsheet.relative_figures(
            equity, benchmark, float(periods),
            float((result.settings or {}).get("risk_free_rate") or 0.0))
        sections += [_title(f"Against the benchmark: {name}"),
                     Section("benchmark", viz.benchmark_table(result.metrics or {}, figures,
                                                               name).to_html(
                         index=False, classes="mr-table", escape=True, border=0))]
    worst = tearsheet.drawdown_periods(equity)
    sections += [_title("Worst drawdowns"),
                 Section("worst_drawdowns", viz.drawdowns_table(worst).to_html(
                     index=False, classes="mr-table", escape=True, border=0))]
    yearly = tearsheet.yearly_returns(equity, benchmark)
    yearly.attrs["benchmark"] = str(benchmark.name) if benchmark is not None else ""
    sections.append(Section("yearly_returns", figure=viz.plot_yearly_returns(
        yearly, "Yearly returns" + (f" against {benchmark.name}" if benchmark is not None
                                    else ""))))
    if benchmark is not None and len(equity) > tearsheet.ROLLING_BETA_BARS:
        sections.append(Section("rolling_beta", figure=viz.plot_rolling_beta(
            tearsheet.rolling_beta(equity, benchmark),
            f"Rolling beta to {benchmark.name} ({tearsheet.ROLLING_BETA_BARS} bars)")))
    return sections


def _portfolio_sections(result: Any) -> list[Section]:
    """A portfolio run's own sections: contribution, per-market metrics, correlation,
    exposure and margin, trades by market."""
    universe = (result.universe or {}).get("name", "")
    sections = [_title(f"Markets of universe {universe}: contribution and metrics"),
                Section("contribution", figure=viz.plot_contribution(result.markets))]
    portfolio = getattr(result, "portfolio", None)
    if portfolio is not None:
        sections.append(Section("market_pnl", figure=viz.plot_market_pnl(portfolio.pnl,
                                                                         portfolio.costs)))
    sections.append(Section("markets", viz.markets_table(result.markets).to_html(
        index=False, classes="mr-trades", escape=True, border=0)))
    if portfolio is not None:
        if len(portfolio.markets) > 1:
            sections.append(Section("correlation",
                                    figure=viz.plot_correlation(portfolio.correlation())))
        sections.append(Section("exposure", figure=viz.plot_exposure(portfolio.exposure())))
    return sections


def _trades_section(trades: pd.DataFrame, linked: bool) -> Section:
    table = viz.trades_table(trades)
    count = len(table)
    if count > 2 * TRADES_SHOWN:
        gap = pd.DataFrame([["…"] * len(table.columns)], columns=table.columns)
        gap.iloc[0, 0] = f"… {count - 2 * TRADES_SHOWN:,} trades not shown …"
        shown = pd.concat([table.head(TRADES_SHOWN), gap, table.tail(TRADES_SHOWN)])
        note = (f"<p>{count:,} trades: the first and last {TRADES_SHOWN} are shown; "
                '<a href="trades.csv" download>all of them in trades.csv</a>.</p>')
    else:
        shown, note = table, (f'<p>{count:,} trades (<a href="trades.csv" download>'
                              "trades.csv</a>).</p>" if count else "<p>No trades.</p>")
    if not linked:
        note = note.replace('<a href="trades.csv" download>', "").replace("</a>", "")
    return Section("trades", note + shown.to_html(index=False, classes="mr-trades",
                                                 escape=True, border=0))


def build_report(result: Any, overlays: Mapping[str, pd.Series] | None = None,
                 defaults: Mapping[str, Any] | None = None,
                 trades_file: bool | None = None) -> Report:
    """The sections of ``result``'s report (see :func:`meridian.viz.report`);
    ``trades_file``: whether ``trades.csv`` lies beside the page (inside ``meridian run``
    unless said otherwise)."""
    changed = set(result.changed or [])
    if defaults is not None:
        changed = {n for n, v in (result.params or {}).items() if defaults.get(n, v) != v}
    elif os.environ.get(CHANGED_VARIABLE) is not None:
        changed = {n for n in os.environ[CHANGED_VARIABLE].split(",") if n}
    report = Report(result.run_id)
    report.sections.append(Section("header", _header(result, changed)))
    equity = result.equity
    if result.status == "success" and not equity.empty:
        from meridian.tearsheet import drawdown_periods

        buy_and_hold = _benchmark(result)
        user, trouble = _user_benchmark(result)
        if trouble:
            report.sections.append(Section("benchmark_note", f"<p>{_esc(trouble)}</p>"))
        report.sections += [
            Section("equity", figure=viz.plot_equity_vs_benchmark(
                equity, [line for line in (buy_and_hold, user) if line is not None],
                "Equity, buy & hold" + (f" and {user.name}" if user is not None else ""))),
            Section("drawdown", figure=viz.plot_drawdown(
                result.drawdown if len(result.drawdown) else viz.drawdown_of(equity),
                f"Underwater: drawdown, the {WORST} worst shaded",
                drawdown_periods(equity, WORST))),
        ]
        report.sections += _tear_sheet(result, user if user is not None else buy_and_hold)
        if getattr(result, "markets", None):  # a portfolio: its markets come next
            report.sections += _portfolio_sections(result)
        report.sections += [
            Section("rolling_sharpe", figure=viz.plot_rolling_sharpe(equity)),
            Section("monthly_returns", figure=viz.monthly_returns_heatmap(equity)),
            Section("distribution", figure=viz.plot_return_distribution(equity)),
        ]
        prices = getattr(result, "prices", None)
        if prices is not None and "Close" in prices:
            traded = prices.loc[equity.index]
            lines = {name: line.reindex(equity.index) for name, line in (overlays or {}).items()}
            report.sections.append(Section("price", figure=viz.plot_price_with_signals(
                traded, result.trades, lines)))
        exits = viz.plot_pnl_by_exit_reason(result.trades)
        if exits is not None and set(result.trades["exit_reason"]) - {"signal", "end"}:
            # only when a stop, target or trailing stop closed trades: else one bar says it all
            report.sections.append(Section("exit_reasons", figure=exits))
        linked = bool(os.environ.get(RUN_DIR_VARIABLE)) if trades_file is None else trades_file
        report.sections += [_title("Trades"), _trades_section(result.trades, linked)]
        report.trades = result.trades
    report.record = result
    return report


def report(result: Any, *, overlays: Mapping[str, pd.Series] | None = None,
           defaults: Mapping[str, Any] | None = None, display: bool = True):
    """The standard report of one run, the same in notebooks, ``%%backtest``, ``meridian run``
    reports and the dashboard: a header (run id, strategy, time, parameters — those differing
    from the defaults highlighted —, data file, span, bar count and SHA-256, key metrics as
    cards), equity against buy & hold, drawdown, rolling Sharpe, monthly returns, the
    distribution of returns, price with entries and exits (plus ``overlays``, e.g. the FLD),
    P&L by exit reason when trades have one, and the trades (first and last 20; all of them in
    ``trades.csv`` beside a ``meridian run`` report). A portfolio run shows its universe, a
    table of its markets and each market's P&L instead of one market's prices.

    ``result`` is a :class:`~meridian.record.RunRecord` (what every backtest returns). Shown at
    once in a notebook unless ``display=False``; returns the :class:`Report`
    (``.html()`` gives it as one HTML fragment)."""
    built = build_report(result, overlays=overlays, defaults=defaults)
    if display:
        built.show()
    return built


def backtest_summary(result: Any, metrics: Mapping[str, float | None] | None = None,
                     title: str | None = None) -> Report:
    """Equity with drawdown, the metrics table and the trades table of one run: shown at once
    in a Jupyter kernel (also from inside a loop) and returned as a :class:`Report` (sections
    ``title``, ``error`` when it failed, ``equity``, ``metrics``, ``trades``; ``.html()``).

    ``result`` is a :class:`~meridian.record.RunRecord`, its ``to_dict()``, a registry record
    (which keeps no trades: no trades section) or an engine result (pass ``metrics``, or they
    are computed with :func:`meridian.engine.compute_metrics`).
    """
    if hasattr(result, "sim"):  # an engine result
        from meridian.engine import compute_metrics

        record = RunRecord(run_id="", timestamp="", strategy_name="", params={},
                           metrics=dict(metrics or compute_metrics(result)),
                           equity=result.equity, drawdown=result.drawdown, trades=result.trades)
        has_trades = True
    else:
        record = RunRecord.of(result)
        has_trades = not isinstance(result, Mapping) or result.get("trades") is not None
    head = " ".join(filter(None, [record.strategy_name, viz.format_params(record.params)]))
    if title is None:
        title = f"{head} · run {record.run_id[:8]}" if record.run_id else head
    drawdown = record.drawdown if len(record.drawdown) else viz.drawdown_of(record.equity)
    summary = Report(record.run_id, [Section("title", f"<h3>{_esc(title)}</h3>")], lifted=False)
    if record.error:
        summary.sections.append(Section("error", f"<p><b>failed:</b> {_esc(record.error)}</p>"))
    summary.sections += [
        Section("equity", figure=viz.plot_equity_with_drawdown(record.equity, drawdown,
                                                               title=None)),
        Section("metrics", viz.metrics_table(dict(
            record.metrics if metrics is None else metrics)).to_html()),
    ]
    if has_trades:
        summary.trades = viz.trades_table(record.trades)
        summary.sections.append(Section("trades", summary.trades.to_html(index=False)))
    if viz._ipython() is not None:  # shows inside loops too (`for run in runs: ...`)
        summary.show()
    return summary


def write_record_report(record, path: str | os.PathLike[str],
                        out: str | os.PathLike[str]) -> Path:
    """A report page for a run that has no notebook (a walk-forward's stitched run, an API
    run): :func:`report`'s sections, the shared plotly.js, ``trades.csv``
    beside it."""
    path = Path(path)
    built = build_report(record, trades_file=True)
    title = f"{record.strategy_name} · {record.name or record.kind} · run {record.run_id[:8]}"
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>"
            f'<script src="{html.escape(plotly_src(path, out), quote=True)}"></script>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            '<body style="margin:1.5rem;max-width:1200px">'
            f"{built.html()}<script>{CHART_LOADER}</script></body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    if built.trades is not None:
        write_atomic(path.parent / "trades.csv", built.trades.to_csv(index=False))
    return write_atomic(path, lock_down(page, [CHART_LOADER]))
