"""Every metric on a case small enough to compute by hand, and the edge cases."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from meridian.engine import backtest, compute_metrics
from meridian.engine import metrics as m

EQUITY = np.array([100.0, 110.0, 99.0, 121.0, 108.9])
INDEX = pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06", "2021-01-01"])
RETURNS = [0.0, 0.1, -0.1, 121 / 99 - 1, -0.1]  # first bar measured from capital 100


def test_returns_and_totals():
    np.testing.assert_allclose(m.returns_from_equity(EQUITY, 100.0), RETURNS)
    assert m.total_return(EQUITY, 100.0) == pytest.approx(0.089)
    years = 366 / 365.25  # 2020-01-01 .. 2021-01-01 (leap year)
    assert m.cagr(EQUITY, 100.0, INDEX) == pytest.approx(1.089 ** (1 / years) - 1)


def test_risk_ratios_by_hand():
    mean, std = statistics.mean(RETURNS), statistics.stdev(RETURNS)
    r = np.array(RETURNS)
    assert m.volatility(r, 252) == pytest.approx(std * math.sqrt(252))
    assert m.sharpe_ratio(r, 252) == pytest.approx(mean / std * math.sqrt(252))
    rf_daily = 1.05 ** (1 / 252) - 1
    assert m.sharpe_ratio(r, 252, 0.05) == pytest.approx((mean - rf_daily) / std * math.sqrt(252))
    downside = math.sqrt((0.1**2 + 0.1**2) / 5)
    assert m.sortino_ratio(r, 252) == pytest.approx(mean / downside * math.sqrt(252))


def test_drawdowns_by_hand():
    # peaks 100, 110, 110, 121, 121 → drawdowns 0, 0, −10%, 0, −10%
    np.testing.assert_allclose(m.drawdown(EQUITY), [0, 0, -0.1, 0, -0.1], atol=1e-12)
    assert m.max_drawdown(EQUITY) == pytest.approx(-0.1)
    # under water from the 2020-01-06 peak to the last bar (never recovered): 361 days
    assert m.max_drawdown_duration(EQUITY, INDEX) == pytest.approx(361)
    assert m.calmar_ratio(0.2, -0.1) == pytest.approx(2.0)


def test_drawdown_duration_counts_until_recovery():
    equity = np.array([100.0, 90.0, 95.0, 100.0, 101.0])
    index = pd.date_range("2020-01-01", periods=5, freq="7D")
    assert m.max_drawdown_duration(equity, index) == 21  # peak on day 0, back to 100 on day 21
    # new highs across a weekend are not a drawdown; one dip from Tuesday to Thursday is 2 days
    days = pd.bdate_range("2024-01-04", periods=6)  # Thu Fri Mon Tue Wed Thu
    assert m.max_drawdown_duration(np.array([1.0, 2, 3, 4, 3.5, 5]), days) == 2
    assert m.max_drawdown_duration(np.array([1.0, 2, 3, 4, 5, 4.5]), days) == 1


def test_trade_statistics_by_hand():
    pnl = np.array([300.0, -100.0, 200.0, -200.0])
    returns = np.array([0.03, -0.01, 0.02, -0.02])
    assert m.win_rate(pnl) == 0.5
    assert m.profit_factor(pnl) == pytest.approx(500 / 300)
    assert m.avg_trade(returns) == pytest.approx(0.005)
    assert m.best_trade(returns) == 0.03 and m.worst_trade(returns) == -0.02
    assert m.expectancy(pnl) == pytest.approx(0.5 * 250 - 0.5 * 150)
    assert m.sqn(pnl) == pytest.approx(2 * 50 / statistics.stdev(pnl))
    assert m.exposure(np.array([0.0, 1.0, -1.0, 0.0])) == 0.5
    assert m.buy_and_hold_return(np.array([50.0, 75.0])) == 0.5


def test_periods_per_year_from_spacing():
    assert m.infer_periods_per_year(pd.bdate_range("2020-01-01", periods=50)) == 252
    assert m.infer_periods_per_year(pd.date_range("2020-01-01", periods=50, freq="D")) == 365
    assert m.infer_periods_per_year(pd.date_range("2020-01-01", periods=50, freq="W")) == 52
    assert m.infer_periods_per_year(pd.date_range("2020-01-01", periods=50, freq="MS")) == 12
    hourly = pd.date_range("2020-01-06 09:00", periods=7 * 20, freq="h")
    hourly = hourly[(hourly.hour >= 9) & (hourly.hour < 16) & (hourly.day_of_week < 5)]
    assert m.infer_periods_per_year(hourly) == pytest.approx(252 * 7)


def _bars(n: int) -> pd.DataFrame:
    prices = np.linspace(100, 110, n)
    return pd.DataFrame({"Open": prices, "High": prices, "Low": prices, "Close": prices},
                        index=pd.bdate_range("2020-01-01", periods=n))


@pytest.mark.parametrize("n", [1, 2, 30])
def test_edge_cases_give_defined_values(n):
    """No trades, flat equity and a single bar: finite numbers or NaN, never inf or errors."""
    metrics = compute_metrics(backtest(_bars(n), np.zeros(n)))
    assert set(metrics) == set(m.METRIC_NAMES)
    assert all(isinstance(v, float) and not math.isinf(v) for v in metrics.values())
    assert metrics["total_return"] == 0 and metrics["num_trades"] == 0
    assert metrics["max_drawdown"] == 0 and metrics["max_drawdown_duration"] == 0
    for undefined in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "win_rate",
                      "profit_factor", "sqn", "avg_trade"):
        assert math.isnan(metrics[undefined])


def test_all_winning_trades_have_no_infinite_profit_factor():
    data = _bars(30)
    metrics = compute_metrics(backtest(data, np.r_[np.ones(10), np.zeros(20)]))
    assert metrics["num_trades"] == 1 and metrics["win_rate"] == 1
    assert math.isnan(metrics["profit_factor"]) and math.isnan(metrics["sqn"])


def test_format_metric():
    assert m.format_metric("total_return", 0.1234) == "12.34%"
    assert m.format_metric("sharpe_ratio", 1.234) == "1.23"
    assert m.format_metric("final_equity", -1234.5) == "-$1,234.50"
    assert m.format_metric("max_drawdown_duration", 45.0) == "45 days"
    assert m.format_metric("sqn", float("nan")) == "n/a"
