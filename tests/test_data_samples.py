"""The shipped SYNTHETIC samples: reproducible bytes, valid bars, a COT index from bar one,
and an edge weak enough that backtests on them look like real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from meridian.api import run_backtest
from meridian.data import SAMPLE_COT, SAMPLE_OHLCV, load_ohlcv, load_sample, read_cot
from meridian.data._synthetic import MARKET, write_samples


def test_regenerating_gives_the_shipped_bytes(tmp_path: Path) -> None:
    ohlcv_path, cot_path = write_samples(tmp_path)
    assert ohlcv_path.read_bytes() == SAMPLE_OHLCV.read_bytes()
    assert cot_path.read_bytes() == SAMPLE_COT.read_bytes()


def test_samples_are_small_and_labelled_synthetic() -> None:
    for path in (SAMPLE_OHLCV, SAMPLE_COT):
        assert path.stat().st_size < 1_000_000
    assert "SYNTHETIC" in MARKET
    assert "synthetic" in (SAMPLE_OHLCV.parent / "README.md").read_text().lower()
    assert SAMPLE_OHLCV.read_text().splitlines()[0] == "Date,Open,High,Low,Close,Volume"


def test_load_sample_has_ten_years_of_valid_bars_and_cot_from_the_first_bar() -> None:
    data = load_sample()
    assert data.index[-1] - data.index[0] >= pd.Timedelta(days=3652)
    assert list(data.columns) == ["Open", "High", "Low", "Close", "Volume", "COT_Index"]
    o, h, lo, c = (data[k] for k in ("Open", "High", "Low", "Close"))
    assert (lo > 0).all() and (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert np.allclose(
        data[["Open", "High", "Low", "Close"]] * 100,
        (data[["Open", "High", "Low", "Close"]] * 100).round(),
    )  # 0.01 tick
    assert data["COT_Index"].notna().all()
    assert data["COT_Index"].between(-1, 1).all()
    assert "SYNTHETIC" in data.attrs["source"]


def test_load_sample_returns_independent_copies() -> None:
    first = load_sample()
    first["Close"] = 0.0
    assert (load_sample()["Close"] > 0).all()
    plain = load_sample(with_cot=False)
    assert "COT_Index" not in plain.columns
    pd.testing.assert_frame_equal(plain, load_ohlcv(SAMPLE_OHLCV), check_flags=False)


def test_sample_cot_is_in_cftc_layout_and_starts_three_years_early() -> None:
    header = SAMPLE_COT.read_text().splitlines()[0]
    assert header.startswith('"Market and Exchange Names","As of Date in Form YYMMDD"')
    assert '" Total Reportable Positions-Long (All)"' in header
    cot = read_cot(SAMPLE_COT)
    assert (cot.index.day_of_week == 1).all()  # Tuesdays
    prices = load_sample(with_cot=False)
    assert (cot.index < prices.index[0]).sum() >= 156
    # contrarian hedgers: commercials are net shorter when the price stretched above its mean
    weekly = np.log(prices["Close"]).reindex(cot.index, method="ffill").dropna()
    stretch = weekly - weekly.rolling(26).mean()
    assert stretch.corr(cot["comm_net"].reindex(weekly.index)) < -0.3


def test_sample_has_cycles_for_fld_to_find() -> None:
    data = load_sample(with_cot=False)
    fld = ((data["High"] + data["Low"]) / 2).shift(21)
    side = np.sign(data["Close"] - fld).dropna()
    crossings = int((side.diff().fillna(0) != 0).sum())
    assert 80 < crossings < 600  # regular swings, neither noise nor one long trend
    daily = np.log(data["Close"]).diff().std()
    assert 0.008 < daily < 0.02


def test_sample_is_not_a_money_machine() -> None:
    # cycles and COT carry a little information, noise dominates (see _synthetic.py)
    fld = run_backtest("fld").metrics
    assert 0.2 < fld["sharpe_ratio"] < 1.0 and fld["max_drawdown"] < -0.15
    plain = run_backtest("fld", data=load_sample(with_cot=False)).metrics
    assert 0 < plain["sharpe_ratio"] < fld["sharpe_ratio"] + 0.2
    assert -0.3 < run_backtest("sma_cross").metrics["sharpe_ratio"] < 0.6
    data = load_sample()
    forward = data["Close"].shift(-20) / data["Close"] - 1
    assert 0 < data["COT_Index"].corr(forward) < 0.15
    assert 0.5 * data["Close"].iloc[0] < data["Close"].iloc[-1] < 2.5 * data["Close"].iloc[0]
