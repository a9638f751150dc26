"""meridian.viz: the charts and tables notebooks, reports, comparisons and the dashboard share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from registry_samples import failing_run

from meridian import viz
from meridian.api import run_backtest
from meridian.engine import backtest
from meridian.strategies import get_strategy


@pytest.fixture(scope="module")
def results():
    return {
        "fld10": run_backtest("fld", {"fld_offset": 10}),
        "fld15": run_backtest("fld", {"fld_offset": 15}),
        "sma": run_backtest("sma_cross", {"fast": 5, "slow": 30}),
        "failed": failing_run(),
    }


def _record(result) -> dict:
    """What the registry gives back: no trades, no drawdown, equity as a dict."""
    record = result.to_dict()
    record.pop("trades")
    record.pop("drawdown")
    return {**record, "kind": "api"}


def test_plot_equity_curve_takes_a_series_or_a_registry_dict(results):
    equity = results["fld10"].equity
    from_series = viz.plot_equity_curve(equity, initial_capital=100_000)
    from_dict = viz.plot_equity_curve(_record(results["fld10"])["equity"])
    for fig in (from_series, from_dict):
        (trace,) = fig.data
        assert isinstance(fig, go.Figure) and len(trace.y) == len(equity)
        np.testing.assert_allclose(trace.y, equity.to_numpy())
    assert pd.Timestamp(from_dict.data[0].x[0]) == equity.index[0]
    assert from_series.layout.shapes[0].y0 == 100_000  # the starting-capital line


def test_as_series_turns_nulls_into_nan():
    series = viz.as_series({"index": ["2024-01-01", "2024-01-02", "2024-01-03"],
                            "values": [1.0, None, 3.0]})
    assert series.index[1] == pd.Timestamp("2024-01-02") and np.isnan(series.iloc[1])
    assert viz.as_series(None).empty


def test_metrics_table_formats_currency_percent_and_ratios(results):
    table = viz.metrics_table(results["fld10"].metrics)
    values = table["Value"]
    assert values["total return"].endswith("%") and values["final equity"].startswith("$")
    assert values["sharpe ratio"].count(".") == 1 and len(values["sharpe ratio"].split(".")[1]) == 2
    assert viz.metrics_table({"sharpe_ratio": float("nan")})["Value"].iloc[0] == "n/a"


def test_differing_params_and_labels():
    sets = [{"a": 1, "b": "x", "only_here": 3}, {"a": 2, "b": "x"}, {"a": 1.0, "b": "x"}]
    assert viz.differing_params(sets) == ["a"]  # 1 and 1.0 read differently; b never changes
    assert viz.format_params({"a": 1, "path": "", "flag": False}) == "a=1, flag=False"
    assert viz.format_params({"a": 1, "path": ""}, keys=["path", "zzz"]) == 'path=""'


def test_comparison_chart_normalizes_and_names_strategy_and_changed_params(results):
    runs = [results["fld10"], _record(results["fld15"]), results["sma"].to_dict(),
            _record(results["failed"])]
    fig = viz.comparison_chart(runs)
    # the failed sma_cross run has no curve, but its fast/slow differ from the other's
    assert [t.name for t in fig.data] == ["fld fld_offset=10", "fld fld_offset=15",
                                          "sma_cross fast=5, slow=30"]
    for trace, result in zip(fig.data, ["fld10", "fld15", "sma"], strict=True):
        equity = results[result].equity
        assert trace.y[0] == pytest.approx(1.0)
        assert trace.y[-1] == pytest.approx(equity.iloc[-1] / equity.iloc[0])
    assert fig.layout.yaxis.title.text == "Growth of 1.0"


def test_equal_labels_get_the_id_prefix_and_markup_is_escaped(results):
    first, second = _record(results["fld10"]), _record(results["fld10"])
    second["run_id"] = "ffffffff-0000-4000-8000-000000000000"
    assert viz.run_labels([first, second]) == [f"fld · {first['run_id'][:8]}", "fld · ffffffff"]
    hostile = {**second, "params": {"note": "<b>x</b>"}}
    hostile_two = {**first, "params": {"note": "y"}}
    fig = viz.comparison_chart([hostile, hostile_two])
    assert fig.data[0].name == "fld note=&lt;b&gt;x&lt;/b&gt;"  # Plotly shows it literally


def _metric_rows(summary) -> int:
    return summary.section("metrics").html.count("<tr>") - 1  # less the header row


def test_backtest_summary_from_a_result_a_dict_a_record_and_an_engine_result(results):
    result = results["fld15"]
    summary = viz.backtest_summary(result)
    assert isinstance(summary, viz.Report) and not summary.lifted  # the one report object
    title = summary.section("title").html
    assert "fld fld_offset=15" in title and result.run_id[:8] in title
    assert len(summary.trades) == len(result.trades) and _metric_rows(summary) == 19
    assert [t.name for t in summary.section("equity").figure.data] == ["Equity", "Drawdown"]
    assert len(viz.backtest_summary(result.to_dict()).trades) == len(result.trades)
    from_record = viz.backtest_summary(_record(result))
    assert from_record.trades is None and from_record.section("trades") is None
    assert _metric_rows(from_record) == 19
    assert min(from_record.section("equity").figure.data[1].y) < 0  # drawdown from equity

    data = get_strategy("fld").signals
    from meridian.data import load_sample

    frame = load_sample()
    engine = backtest(frame, data(frame, fld_offset=10))
    from_engine = viz.backtest_summary(engine, title="engine")
    assert from_engine.section("title").html == "<h3>engine</h3>"
    assert _metric_rows(from_engine) == 19

    html = viz.backtest_summary(results["failed"]).html()
    assert "failed:" in html and "need 1 &lt;= fast &lt; slow" in html
