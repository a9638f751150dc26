"""The tear sheet's figures against references written out here from their definitions
(quantstats' where standard), the benchmark file in its three forms, and the report's sections."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from meridian import run_backtest, tearsheet, viz
from meridian.data import load_sample
from meridian.exceptions import DataError


def _curves(seed: int = 3, bars: int = 800) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2015-01-01", periods=bars)
    market = 100 * np.cumprod(1 + rng.normal(0.0003, 0.011, bars))
    own = 0.6 * np.diff(np.log(market), prepend=np.log(market[0])) + rng.normal(0.0002, 0.006,
                                                                                  bars)
    return (pd.Series(1e5 * np.exp(np.cumsum(own)), index=index),
            pd.Series(market, index=index, name="market"))


def _returns(values: np.ndarray) -> list[float]:
    return [values[i] / values[i - 1] - 1 for i in range(1, len(values))]


def test_relative_figures_match_their_definitions():
    equity, market = _curves()
    r, b = _returns(equity.to_numpy()), _returns(market.to_numpy())
    n = len(r)
    mean_r, mean_b = sum(r) / n, sum(b) / n
    cov = sum((x - mean_r) * (y - mean_b) for x, y in zip(r, b, strict=True)) / (n - 1)
    var_b = sum((y - mean_b) ** 2 for y in b) / (n - 1)
    var_r = sum((x - mean_r) ** 2 for x in r) / (n - 1)
    active = [x - y for x, y in zip(r, b, strict=True)]
    mean_a = sum(active) / n
    std_a = math.sqrt(sum((a - mean_a) ** 2 for a in active) / (n - 1))
    peak, deepest = -math.inf, 0.0
    for price in market:
        peak = max(peak, price)
        deepest = min(deepest, price / peak - 1)
    figures = tearsheet.relative_figures(equity, market, 252.0)
    assert figures["beta"] == pytest.approx(cov / var_b, rel=1e-10)
    assert figures["alpha"] == pytest.approx((mean_r - cov / var_b * mean_b) * 252, rel=1e-10)
    assert figures["correlation"] == pytest.approx(cov / math.sqrt(var_r * var_b), rel=1e-10)
    assert figures["information_ratio"] == pytest.approx(mean_a / std_a, rel=1e-10)
    assert figures["benchmark_volatility"] == pytest.approx(math.sqrt(var_b * 252), rel=1e-10)
    assert figures["benchmark_sharpe_ratio"] == pytest.approx(
        mean_b / math.sqrt(var_b) * math.sqrt(252), rel=1e-10)
    assert figures["benchmark_max_drawdown"] == pytest.approx(deepest, rel=1e-12)


def test_the_worst_drawdowns_are_each_period_under_water():
    index = pd.bdate_range("2020-01-01", periods=12)
    equity = pd.Series([100, 110, 99, 88, 110, 120, 114, 126, 100, 90, 95, 97.0], index=index)
    table = tearsheet.drawdown_periods(equity, top=5)
    assert list(table["depth"]) == pytest.approx([90 / 126 - 1, 88 / 110 - 1, 114 / 120 - 1])
    deepest, second, third = table.itertuples()
    assert (deepest.start, deepest.valley, deepest.end) == (index[8], index[9], pd.NaT) or (
        deepest.start == index[8] and deepest.valley == index[9] and pd.isna(deepest.end))
    assert deepest.days == (index[11] - index[7]).days  # from the peak to the last bar
    assert (second.start, second.valley, second.end) == (index[2], index[3], index[4])
    assert second.days == (index[4] - index[1]).days
    assert (third.start, third.valley, third.end) == (index[6], index[6], index[7])
    assert tearsheet.drawdown_periods(equity, top=1)["depth"].tolist() == [90 / 126 - 1]
    assert tearsheet.drawdown_periods(pd.Series([1.0, 2, 3], index=index[:3])).empty


def test_yearly_returns_compound_each_calendar_year():
    index = pd.to_datetime(["2020-03-02", "2020-12-31", "2021-06-01", "2021-12-31",
                            "2022-01-03"])
    equity = pd.Series([100, 120, 90, 108, 110.0], index=index)
    bench = pd.Series([10, 11, 12, 11, 11.0], index=index)
    table = tearsheet.yearly_returns(equity, bench)
    assert list(table.index) == [2020, 2021, 2022]
    assert table["strategy"].tolist() == pytest.approx([0.2, 108 / 120 - 1, 110 / 108 - 1])
    assert table["benchmark"].tolist() == pytest.approx([0.1, 0.0, 0.0])


def test_rolling_beta_is_the_beta_of_each_window():
    equity, market = _curves(bars=300)
    rolling = tearsheet.rolling_beta(equity, market, window=60)
    assert rolling.iloc[:60].isna().all()
    for end in (60, 150, 299):
        r = tearsheet.returns_of(equity).iloc[end - 59:end + 1]
        b = tearsheet.returns_of(market).iloc[end - 59:end + 1]
        assert rolling.iloc[end] == pytest.approx(tearsheet.beta(r, b), rel=1e-9)


def test_a_benchmark_is_known_only_from_its_own_date_on():
    bars = pd.bdate_range("2024-01-01", periods=10)
    weekly = pd.Series([100.0, 105.0], index=pd.to_datetime(["2024-01-03", "2024-01-10"]))
    seen = tearsheet.aligned(weekly, bars)
    assert seen.iloc[:2].isna().all()  # nothing before its first price
    assert (seen.loc["2024-01-03":"2024-01-09"] == 100.0).all()  # not the next week's yet
    assert (seen.loc["2024-01-10":] == 105.0).all()


@pytest.mark.parametrize("form", ["ohlcv", "prices", "returns"])
def test_a_benchmark_file_in_each_form(tmp_path, form):
    _, market = _curves(bars=50)
    path = tmp_path / f"index_{form}.csv"
    if form == "ohlcv":
        frame = pd.DataFrame({"Open": market, "High": market, "Low": market, "Close": market})
        frame.rename_axis("Date").to_csv(path)
    elif form == "prices":
        market.rename("level").rename_axis("Date").to_csv(path)
    else:
        market.pct_change().fillna(0.0).rename("ret").rename_axis("Date").to_csv(path)
    prices = tearsheet.load_benchmark(path)
    assert prices.name == f"index_{form}"
    scaled = prices / prices.iloc[0] * market.iloc[0]
    np.testing.assert_allclose(scaled.to_numpy(), market.to_numpy(), rtol=1e-9)


def test_a_bad_benchmark_is_one_line_before_the_run(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("Date,a,b\n2024-01-02,1,2\n")
    with pytest.raises(DataError, match="a benchmark is an OHLCV file or a date column and one"):
        run_backtest("fld", {}, benchmark=str(path))
    with pytest.raises(DataError, match="missing.csv: file not found"):
        run_backtest("fld", {}, benchmark=str(tmp_path / "missing.csv"))


def test_a_run_with_a_benchmark_records_it_and_its_report_measures_against_it(tmp_path):
    sample = load_sample(with_cot=False)
    other = sample["Close"].iloc[::-1].to_numpy()  # another market on the same dates
    path = tmp_path / "ndx.csv"
    pd.Series(other, index=sample.index, name="close").rename_axis("Date").to_csv(path)
    result = run_backtest("fld", {}, benchmark=str(path))
    assert result.data["benchmark"]["name"] == "ndx"
    assert len(result.data["benchmark"]["sha256"]) == 64
    names = [section.name for section in viz.report(result).sections]
    assert "title:Against the benchmark: ndx (benchmark)" in names
    for name in ("benchmark", "worst_drawdowns", "yearly_returns", "rolling_beta"):
        assert name in names
    table = next(s for s in viz.report(result).sections if s.name == "benchmark").html
    beta = tearsheet.beta(tearsheet.returns_of(result.equity).iloc[1:],
                          tearsheet.returns_of(pd.Series(other, index=sample.index)).iloc[1:])
    assert f"<td>{beta:.2f}</td>" in table
