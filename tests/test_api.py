"""The Python API end to end on the bundled sample, and its errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from registry_samples import failing_run

from meridian.api import BacktestResult, quick_backtest, run_backtest
from meridian.data import load_sample
from meridian.engine import backtest, compute_metrics
from meridian.exceptions import ParameterError, StrategyNotFoundError
from meridian.strategies import fld


def test_run_backtest_fld_on_the_sample():
    result = run_backtest("fld", {"fld_offset": 10, "cot_threshold": 0.0})
    assert result.status == "success" and result.error is None
    uuid.UUID(result.run_id, version=4)
    assert datetime.fromisoformat(result.timestamp).utcoffset().total_seconds() == 0
    assert result.params == {"fld_offset": 10, "cot_threshold": 0.0, "allow_short": True,
                             "fld_stop": False}
    assert result.metrics["num_trades"] > 20 and math.isfinite(result.metrics["sharpe_ratio"])
    data = load_sample()
    assert result.equity.index.equals(data.index) and result.drawdown.max() <= 0
    # the API adds bookkeeping, never different numbers
    direct = compute_metrics(backtest(data, fld.signals(data, 10, 0.0)))
    assert result.metrics == direct


def test_params_and_engine_options_change_the_result():
    base = run_backtest("sma_cross")
    other = run_backtest("sma_cross", {"fast": 5}, initial_capital=50_000, commission=0.001)
    assert other.params == {"fast": 5, "slow": 20}
    assert other.equity.iloc[0] == 50_000
    assert other.metrics["total_return"] != base.metrics["total_return"]


def test_to_dict_is_json_and_round_trips():
    result = run_backtest("fld")
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    back = BacktestResult.from_dict(payload)
    assert back.run_id == result.run_id and back.params == result.params
    assert back.metrics.keys() == result.metrics.keys()
    for name, value in result.metrics.items():
        assert value == back.metrics[name] or (math.isnan(value) and math.isnan(back.metrics[name]))
    pd.testing.assert_series_equal(back.equity, result.equity, check_freq=False,
                                   check_index_type=False)
    pd.testing.assert_frame_equal(back.trades, result.trades, check_dtype=False)
    assert back.to_dict() == payload


def test_undefined_metrics_become_null_in_json():
    flat = load_sample().iloc[:100].assign(Open=100.0, High=100.0, Low=100.0, Close=100.0)
    result = run_backtest("fld", {"fld_offset": 50}, data=flat)  # no cross, no trade
    payload = result.to_dict()
    assert payload["metrics"]["sharpe_ratio"] is None
    assert math.isnan(BacktestResult.from_dict(payload).metrics["sharpe_ratio"])


def test_a_strategy_rule_is_checked_before_the_backtest():
    with pytest.raises(ParameterError, match="fast=30, slow=20 breaks the rule fast < slow of "
                                             "sma_cross: the fast average must be shorter"):
        run_backtest("sma_cross", {"fast": 30, "slow": 20})


def test_failing_strategy_is_a_failed_result_not_a_crash():
    result = failing_run()
    assert result.status == "failed"
    assert result.error.startswith("ValueError: need 1 <= fast < slow")
    assert "Traceback" in result.logs[-1]
    assert json.dumps(result.to_dict())


def test_quick_backtest_prints_a_summary(capsys):
    result = quick_backtest("fld", fld_offset=15)
    out = capsys.readouterr().out
    assert result.params["fld_offset"] == 15
    assert "sharpe_ratio" in out and "%" in out and result.run_id in out


def test_run_backtest_on_a_csv_path(tmp_path):
    path = tmp_path / "prices.csv"
    load_sample().iloc[:600, :5].to_csv(path)
    result = run_backtest("fld", data=str(path))
    assert result.status == "success" and len(result.equity) == 600
    assert any("COT filter off" in line for line in result.logs)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: run_backtest("fdl"), StrategyNotFoundError, "available strategies: fld, "),
        (lambda: run_backtest("fld", {"offset": 3}), ParameterError,
         "valid parameters: fld_offset, cot_threshold, allow_short"),
        (lambda: run_backtest("fld", {"fld_offset": "ten"}), ParameterError,
         "'fld_offset' of fld expects int"),
        (lambda: run_backtest("fld", commision=0.1), ParameterError,
         "valid settings: initial_capital, commission, slippage"),
    ],
)
def test_api_errors_name_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_documented_one_liner_works_in_the_venv():
    code = ("from meridian.api import run_backtest; "
            "print(run_backtest('fld', {'fld_offset': 10, 'cot_threshold': 0.0})"
            ".metrics['sharpe_ratio'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert np.isfinite(float(out.stdout))


def _five_minute_bars(bars: int = 3000) -> pd.DataFrame:
    index = pd.date_range("2024-01-02 09:30", periods=bars, freq="5min")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.0005, bars)))
    return pd.DataFrame({"Open": close, "High": close * 1.0005, "Low": close * 0.9995,
                         "Close": close, "Volume": 1.0}, index=index)


def test_intraday_bars_are_annualized_by_their_frequency_and_the_run_records_it():
    result = run_backtest("sma_cross", {"fast": 5, "slow": 20}, data=_five_minute_bars())
    per_year = 365 * 288  # 5-minute bars around the clock, weekends included
    assert result.data["frequency"] == "5-minute"
    assert result.data["periods_per_year"] == pytest.approx(per_year, rel=0.1)  # partial days
    returns = result.equity.pct_change().dropna()
    implied = (result.metrics["sharpe_ratio"] / (returns.mean() / returns.std())) ** 2
    assert implied == pytest.approx(result.data["periods_per_year"], rel=0.01)


def test_periods_per_year_overrides_the_inferred_frequency():
    inferred = run_backtest("fld", {})
    assert inferred.data["frequency"] == "daily" and inferred.data["periods_per_year"] == 252
    weekly = run_backtest("fld", {}, periods_per_year=52)
    assert weekly.data["periods_per_year"] == 52
    ratio = weekly.metrics["sharpe_ratio"] / inferred.metrics["sharpe_ratio"]
    assert ratio == pytest.approx(math.sqrt(52 / 252))


def test_a_file_too_short_to_backtest_is_refused_like_a_frame(tmp_path):
    from meridian.exceptions import DataError

    path = tmp_path / "short.csv"
    load_sample(with_cot=False).iloc[:5].to_csv(path)
    with pytest.raises(DataError, match=r"short.csv has 5 bars; a backtest needs at least 20"):
        run_backtest("fld", {}, data=path)


def test_a_trading_window_without_bars_is_bad_input_not_a_failed_run():
    from meridian.exceptions import EngineError

    with pytest.raises(EngineError, match="no bars between start='2030-01-01'"):
        run_backtest("fld", {}, start="2030-01-01")
