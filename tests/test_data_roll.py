"""Continuous futures: rolls decided at bar t take effect at t+1, adjustments from both closes on
the decision bar, a roll log, the unadjusted price kept for contract sizing, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import meridian
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.data import load_ohlcv
from meridian.data.roll import roll_contracts, write_continuous
from meridian.engine import backtest
from meridian.exceptions import DataError

DAYS = pd.bdate_range("2024-01-02", periods=80)
# contract A trades on days 0-59, B on days 20-79; B's volume and open interest pass A's on day 40
SPANS = {"CLG24": (0, 60, 70.0), "CLH24": (20, 80, 73.0)}  # B trades 1.0 above A


def close_of(name: str, day: int) -> float:
    first, _, price = SPANS[name]
    return price + (day - first) * 0.1


def write_contracts(folder: Path, spans=SPANS, cross: int = 40, suffix: str = ".csv",
                    interest: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, (name, (first, last, price)) in enumerate(spans.items()):
        days = DAYS[first:last]
        close = price + np.arange(len(days)) * 0.1
        early = np.arange(first, last) < cross
        volume = np.where(early == (n == 0), 1000.0, 100.0)
        frame = pd.DataFrame({"Open": close, "High": close + 0.5, "Low": close - 0.5,
                              "Close": close, "Volume": volume}, index=days.rename("Date"))
        if interest:
            frame["OpenInterest"] = volume[::-1].cumsum()[::-1] if n == 0 else volume.cumsum()
        if suffix == ".csv":
            frame.to_csv(folder / f"{name}.csv")
        else:
            frame.to_parquet(folder / f"{name}{suffix}")
    return folder


def test_a_volume_roll_decided_on_bar_t_switches_at_t_plus_1(tmp_path):
    series, log = roll_contracts(write_contracts(tmp_path / "CL"), "volume", "none")
    assert series.loc[DAYS[39], "Contract"] == "CLG24"
    assert series.loc[DAYS[40], "Contract"] == "CLG24"  # the decision bar: still A
    assert series.loc[DAYS[41], "Contract"] == "CLH24"  # its effect: the next bar
    assert series.loc[DAYS[40], "Close"] == pytest.approx(close_of("CLG24", 40))
    assert series.loc[DAYS[41], "Close"] == pytest.approx(close_of("CLH24", 41))
    assert series.index.equals(DAYS) and series["UnadjustedClose"].equals(series["Close"])
    (roll,) = log.itertuples(index=False)
    assert (roll.decided, roll.effective) == (DAYS[40], DAYS[41])
    assert (roll[2], roll.to, roll.reason) == ("CLG24", "CLH24", "volume")
    assert roll.from_close == pytest.approx(close_of("CLG24", 40)) == 74.0
    assert roll.to_close == pytest.approx(close_of("CLH24", 40)) == 75.0
    assert roll.gap == pytest.approx(1.0)
    assert roll.gap == pytest.approx(roll.to_close - roll.from_close)


@given(cut=st.integers(min_value=21, max_value=79), cross=st.integers(min_value=21, max_value=58))
@settings(max_examples=25, deadline=None)
def test_no_bar_depends_on_a_later_bar(tmp_path_factory, cut, cross):
    """Whatever the data after day ``cut`` says, the series up to ``cut`` is the same: a roll
    that peeked one bar ahead (deciding at t on t+1's volume) would differ."""
    folder = write_contracts(tmp_path_factory.mktemp("full"), cross=cross)
    full, _ = roll_contracts(folder, "volume", "none")
    truncated = tmp_path_factory.mktemp("cut")
    for path in folder.iterdir():
        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        frame.loc[: DAYS[cut]].to_csv(truncated / path.name)
    known, _ = roll_contracts(truncated, "volume", "none")
    upto = full.loc[: DAYS[cut - 1]]
    pd.testing.assert_frame_equal(known.loc[: DAYS[cut - 1]], upto)


def test_open_interest_and_calendar_rules(tmp_path):
    folder = write_contracts(tmp_path / "CL", cross=45)
    _, log = roll_contracts(folder, "open_interest", "none")
    oi = pd.read_csv(folder / "CLG24.csv", index_col=0, parse_dates=True)["OpenInterest"]
    oi_b = pd.read_csv(folder / "CLH24.csv", index_col=0, parse_dates=True)["OpenInterest"]
    first_above = (oi_b > oi.reindex(oi_b.index)).idxmax()
    assert log["decided"].iloc[0] == first_above and log["reason"].iloc[0] == "open_interest"
    _, log = roll_contracts(folder, "calendar:5", "none")
    assert log["decided"].iloc[0] == DAYS[59 - 5] and log["effective"].iloc[0] == DAYS[55]
    assert log["reason"].iloc[0] == "calendar:5"


def test_a_roll_that_never_triggers_happens_at_expiry(tmp_path):
    series, log = roll_contracts(write_contracts(tmp_path / "CL", cross=90), "volume", "none")
    assert log["reason"].iloc[0] == "expiry" and log["decided"].iloc[0] == DAYS[59]
    assert series.loc[DAYS[60], "Contract"] == "CLH24"


def test_ratio_adjustment_keeps_every_return_and_the_latest_prices(tmp_path):
    folder = write_contracts(tmp_path / "CL")
    raw, _ = roll_contracts(folder, "volume", "none")
    series, log = roll_contracts(folder, "volume", "ratio")
    own = raw["Close"].pct_change()  # each contract's own return, except across the roll
    own.loc[DAYS[41]] = close_of("CLH24", 41) / close_of("CLH24", 40) - 1
    np.testing.assert_allclose(series["Close"].pct_change().iloc[1:], own.iloc[1:], rtol=1e-12)
    assert series.loc[DAYS[41]:, "Close"].equals(raw.loc[DAYS[41]:, "Close"])
    ratio = log["to_close"].iloc[0] / log["from_close"].iloc[0]
    assert series.loc[DAYS[0], "Close"] == pytest.approx(70.0 * ratio)
    assert series["UnadjustedClose"].equals(raw["Close"])


def test_difference_adjustment_keeps_every_price_change(tmp_path):
    folder = write_contracts(tmp_path / "CL")
    series, log = roll_contracts(folder, "volume", "difference")
    steps = series["Close"].diff().iloc[1:]
    np.testing.assert_allclose(steps, 0.1, rtol=1e-9)  # both contracts rise 0.1 a day
    assert series.loc[DAYS[0], "Close"] == pytest.approx(70.0 + log["gap"].iloc[0])


def test_difference_adjustment_below_zero_is_one_line(tmp_path):
    folder = write_contracts(tmp_path / "CL")
    for name in SPANS:  # A far above B: A's history minus the gap goes below zero
        frame = pd.read_csv(folder / f"{name}.csv", index_col=0, parse_dates=True)
        close = 3.0 + np.arange(len(frame)) * 0.1 if name == "CLG24" else \
            1.0 + np.arange(len(frame)) * 0.01
        frame[["Open", "High", "Low", "Close"]] = np.c_[close, close + 0.01, close * 0.99, close]
        frame.to_csv(folder / f"{name}.csv")
    with pytest.raises(DataError, match=r"difference adjustment takes prices to .* use "
                                        "--adjust ratio"):
        roll_contracts(folder, "volume", "difference")


def test_the_output_reloads_with_the_unadjusted_price_and_sizes_contracts_on_it(tmp_path):
    folder = write_contracts(tmp_path / "CL", suffix=".parquet")
    series, log = roll_contracts(folder, "volume", "ratio")
    log_path = write_continuous(series, log, tmp_path / "data" / "CL.csv")
    assert log_path == tmp_path / "data" / "CL.rolls.csv"
    assert pd.read_csv(log_path)["to"].tolist() == ["CLH24"]
    bars = load_ohlcv(tmp_path / "data" / "CL.csv")
    assert {"UnadjustedClose", "OpenInterest"} <= set(bars.columns)
    np.testing.assert_allclose(bars["UnadjustedClose"], series["UnadjustedClose"])
    ratio = log["to_close"].iloc[0] / log["from_close"].iloc[0]
    assert ratio != pytest.approx(1.0)
    long = pd.Series(1.0, index=bars.index)
    result = backtest(bars, long, initial_capital=1_000_000, multiplier=10)
    raw_open = bars["Open"].iloc[1] / ratio  # day 1's open of contract A, as traded
    assert result.trades["contracts"].iloc[0] == np.floor(1_000_000 / (raw_open * 10))
    adjusted_only = backtest(bars.drop(columns="UnadjustedClose"), long,
                             initial_capital=1_000_000, multiplier=10)
    assert adjusted_only.trades["contracts"].iloc[0] != result.trades["contracts"].iloc[0]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda f: write_contracts(f, spans={"CLG24": (0, 30, 70.0), "CLH24": (35, 80, 72.0)}),
         (), "gap: CLG24 ends on 2024-02-12 but CLH24 starts on 2024-02-20"),
        (lambda f: write_contracts(f, spans={"A": (0, 60, 70.0), "B": (20, 60, 72.0)}),
         (), "A and B both end on 2024-03-25, so neither succeeds the other"),
        (lambda f: (write_contracts(f), (f / "CLC24.csv").write_text("Date,Open,High,Low,Close\n")),
         (), "CLC24.csv: no data rows after the header"),
        (lambda f: f.mkdir(), (), "no contract files"),
        (lambda f: write_contracts(f, interest=False), ("--roll", "open_interest"),
         "no OpenInterest column; --roll open_interest compares"),
        (lambda f: write_contracts(f), ("--roll", "weekly"), "roll rule 'weekly': use volume"),
        (lambda f: write_contracts(f), ("--adjust", "log"), "Invalid value for '--adjust'"),
    ],
    ids=["gap", "same-expiry", "empty-contract", "no-files", "no-open-interest", "bad-rule",
         "bad-adjust"],
)
def test_bad_contracts_are_one_line_and_write_nothing(tmp_path, setup, args, message):
    folder = tmp_path / "CL"
    setup(folder)
    result = meridian("data", "roll", str(folder), *args, "-o", str(tmp_path / "out" / "CL.csv"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in result.stderr and (len(lines) == 1 or "Usage:" in result.stderr), lines
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_series_and_the_log_and_refuses_an_output_among_the_contracts(tmp_path):
    folder = write_contracts(tmp_path / "CL")
    result = meridian("data", "roll", str(folder), "--roll", "volume", "--adjust", "ratio",
                      "-o", str(tmp_path / "CL.csv"))
    assert result.returncode == 0, result.stderr
    assert "2024-02-27 → 2024-02-28  CLG24 → CLH24" in result.stdout
    assert "2 contracts, 1 roll, 80 bars" in result.stdout
    assert (tmp_path / "CL.rolls.csv").is_file()
    inside = meridian("data", "roll", str(folder), "-o", str(folder / "CL.csv"))
    assert inside.returncode == 2 and "inside the contracts folder" in inside.stderr
    assert len(inside.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["CLG24.csv", "CLH24.csv"]
