"""Stops, targets, trailing stops, contracts, sizing: bar by bar against a plain reference loop,
against backtesting.py, and as properties (no exit before its entry or outside its bar, no
look-ahead)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.api import run_backtest
from meridian.data import load_sample
from meridian.engine import Instrument, backtest
from meridian.exceptions import EngineError

# ----------------------------------------------------------------------------- a reference


def reference(data: pd.DataFrame, target: np.ndarray, *, stop=None, take=None, trail=None,
              stop_level=None, multiplier=1.0, tick=0.0, per_contract=0.0, whole=False,
              capital=100_000.0):
    """The rules of the docstring of meridian.engine._orders, written as plainly as possible
    for one combination, no costs but the per-contract fee: fills at the next open, exits
    inside the bar (gap → open, stop before target), flat after an exit until the target
    changes, the last position closed at the last close."""
    o, h, lo, c = (data[k].to_numpy() for k in ("Open", "High", "Low", "Close"))
    rounded = (lambda p: round(p / tick) * tick) if tick else (lambda p: p)
    cash, units, current, blocked, entry, best = capital, 0.0, 0.0, None, None, None
    equity, trades = [], []
    opened = None

    def trade_to(new_units, price, bar, reason):
        nonlocal cash, units, entry, best, opened
        if new_units == units:
            return
        fill = rounded(price)
        if units != 0 and (new_units == 0 or np.sign(new_units) != np.sign(units)):
            pnl = units * (fill - opened[1]) * multiplier - per_contract * abs(units) * 2
            trades.append((opened[0], bar, units, opened[1], fill, pnl, reason))
        cash -= (new_units - units) * fill * multiplier + per_contract * abs(new_units - units)
        if new_units != 0 and (units == 0 or np.sign(new_units) != np.sign(units)):
            opened, entry, best = (bar, fill), fill, fill
        units = new_units

    for t in range(len(c)):
        wanted = target[t - 1] if t else 0.0
        if blocked is not None and wanted != blocked:
            blocked = None
        goal = 0.0 if blocked is not None else wanted
        if goal != current:
            value = cash + units * o[t] * multiplier
            if whole:
                size = math.copysign(math.floor(value * abs(goal) / (o[t] * multiplier)), goal)
            else:
                size = goal * value / o[t]
            trade_to(size if goal else 0.0, o[t], t, "signal")
            current = goal
        if units:
            side = 1 if units > 0 else -1
            stops = []
            if stop:
                stops.append((entry * (1 - side * stop), "stop_loss"))
            if stop_level is not None and t > 0 and not np.isnan(stop_level[t - 1]):
                stops.append((stop_level[t - 1], "stop_loss"))
            if trail:
                stops.append((best * (1 - side * trail), "trailing_stop"))
            level, why = (max(stops) if side > 0 else min(stops)) if stops else (None, None)
            target_level = entry * (1 + side * take) if take else None
            exit_at = None
            if level is not None and side * o[t] <= side * level:
                exit_at = (o[t], why)
            elif target_level is not None and side * o[t] >= side * target_level:
                exit_at = (o[t], "take_profit")
            elif level is not None and (lo[t] <= level if side > 0 else h[t] >= level):
                exit_at = (level, why)
            elif target_level is not None and (h[t] >= target_level if side > 0
                                               else lo[t] <= target_level):
                exit_at = (target_level, "take_profit")
            if exit_at:
                trade_to(0.0, exit_at[0], t, exit_at[1])
                current, blocked = 0.0, wanted
            else:
                best = max(best, h[t]) if side > 0 else min(best, lo[t])
        equity.append(cash + units * c[t] * multiplier)
    if units:
        trade_to(0.0, c[-1], len(c) - 1, "end")
        equity[-1] = cash
    return np.array(equity), trades


def bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.bdate_range("2024-01-01", periods=len(rows))
    return pd.DataFrame(rows, index=index, columns=["Open", "High", "Low", "Close"])


# ------------------------------------------------------------------- the documented cases


def test_a_stop_is_live_on_the_entry_bar():
    data = bars([(100, 101, 99, 100), (100, 102, 90, 96), (96, 97, 95, 96)])
    result = backtest(data, pd.Series([1.0, 1.0, 1.0], index=data.index), stop_loss=0.05)
    (trade,) = result.trades.itertuples()
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason) == (1, 1, "stop_loss")
    assert trade.entry_price == 100 and trade.exit_price == pytest.approx(95)


def test_a_bar_reaching_stop_and_target_exits_at_the_stop():
    data = bars([(100, 101, 99, 100), (100, 106, 94, 100), (100, 101, 99, 100)])
    result = backtest(data, pd.Series(1.0, index=data.index), stop_loss=0.05, take_profit=0.05)
    (trade,) = result.trades.itertuples()
    assert trade.exit_reason == "stop_loss" and trade.exit_price == pytest.approx(95)


def test_a_gap_through_the_stop_fills_at_the_open():
    data = bars([(100, 101, 99, 100), (100, 101, 99, 100), (80, 82, 78, 81)])
    result = backtest(data, pd.Series(1.0, index=data.index), stop_loss=0.05)
    (trade,) = result.trades.itertuples()
    assert trade.exit_bar == 2 and trade.exit_price == 80 and trade.exit_reason == "stop_loss"


def test_after_a_stop_the_position_waits_for_a_new_target():
    data = bars([(100, 101, 99, 100), (100, 101, 90, 95), (95, 99, 94, 98), (98, 99, 97, 98),
                 (98, 99, 97, 98), (98, 99, 97, 98)])
    target = pd.Series([1.0, 1.0, 1.0, 0.0, 1.0, 1.0], index=data.index)
    trades = backtest(data, target, stop_loss=0.05).trades
    assert list(trades["exit_reason"]) == ["stop_loss", "end"]
    assert list(trades["entry_bar"]) == [1, 5]  # not re-entered at bar 2 or 3


def test_a_short_mirrors_a_long():
    data = bars([(100, 101, 99, 100), (100, 104, 96, 100), (100, 106, 99, 104)])
    result = backtest(data, pd.Series(-1.0, index=data.index), stop_loss=0.05)
    (trade,) = result.trades.itertuples()
    assert trade.exit_reason == "stop_loss" and trade.exit_price == pytest.approx(105)
    assert trade.pnl == pytest.approx(-5 * abs(trade.size))


def test_a_trailing_stop_follows_the_best_high_from_the_next_bar():
    data = bars([(100, 101, 99, 100), (100, 110, 99, 109), (109, 112, 104, 105),
                 (105, 106, 99, 100)])
    trades = backtest(data, pd.Series(1.0, index=data.index), trailing_stop=0.05).trades
    (trade,) = trades.itertuples()
    # bar 1: level 95 (from the entry); after its close, best = 110 → 104.5 on bar 2, whose
    # Low 104 reaches it
    assert trade.exit_bar == 2 and trade.exit_price == pytest.approx(104.5)
    assert trade.exit_reason == "trailing_stop"


def test_a_level_decided_at_a_close_guards_the_next_bar():
    data = bars([(100, 101, 99, 100), (100, 101, 98, 100), (100, 101, 96.5, 100),
                 (100, 101, 99, 100)])
    level = pd.Series([97.0, 97.0, np.nan, 97.0], index=data.index)
    trades = backtest(data, pd.Series(1.0, index=data.index), stop_loss=level).trades
    # bar 2's low 96.5 is below 97, but the level for bar 2 is bar 1's: 97 → exit at 97
    assert trades["exit_reason"].iloc[0] == "stop_loss" and trades["exit_bar"].iloc[0] == 2
    level.iloc[1] = np.nan  # now bar 2 has no level: no exit
    assert backtest(data, pd.Series(1.0, index=data.index), stop_loss=level).trades[
        "exit_reason"].iloc[0] == "end"


def test_contracts_multiplier_tick_and_fees():
    data = bars([(100.1, 101, 99, 100), (100.13, 102, 99, 101.0), (101.1, 103, 100, 102.4),
                 (102.3, 103, 101, 102.0)])
    inst = Instrument(multiplier=50, tick_size=0.25, commission_per_contract=2.5)
    result = backtest(data, pd.Series(1.0, index=data.index), instrument=inst,
                      initial_capital=100_000)
    (trade,) = result.trades.itertuples()
    assert trade.contracts == 19 == trade.size  # floor(100,000 / (100.13 × 50))
    assert trade.entry_price == 100.25 and trade.exit_price == 102.0  # on the tick
    assert trade.pnl == pytest.approx(19 * 50 * (102.0 - 100.25) - 2 * 19 * 2.5)
    assert result.equity.iloc[-1] == pytest.approx(100_000 + trade.pnl)


def test_margin_caps_the_contracts():
    data = bars([(100, 101, 99, 100)] * 4)
    inst = Instrument(multiplier=10, margin=20_000)
    trade = backtest(data, pd.Series(1.0, index=data.index), instrument=inst,
                     initial_capital=100_000).trades.iloc[0]
    assert trade["contracts"] == 5  # 100,000 / 20,000, not 100,000 / 1,000


def test_ruin_ends_trading_at_zero():
    calm = [(100 + 0.01 * (i % 2), 100.2, 99.8, 100 + 0.01 * (i % 2)) for i in range(30)]
    data = bars([*calm, (100, 100, 40, 40), (40, 45, 35, 44), (44, 50, 40, 48)])
    result = backtest(data, pd.Series(1.0, index=data.index), sizing="volatility_target",
                      target_volatility=0.5, max_leverage=3.0)  # 3× leverage, then −60 %
    assert (result.equity >= 0).all() and result.equity.iloc[-1] == 0
    assert result.trades["exit_reason"].iloc[-1] == "ruin"
    assert result.trades["exit_bar"].iloc[-1] == 30


def test_volatility_target_sizing_hits_its_target_without_look_ahead():
    data = load_sample()
    close = data["Close"]
    position = pd.Series(np.where(close > close.rolling(20).mean(), 1.0, -1.0), index=data.index)
    result = backtest(data, position, sizing="volatility_target", target_volatility=0.10,
                      max_leverage=3.0)
    assert 0.07 < result.returns.std() * math.sqrt(252) < 0.13
    cut = 2000
    changed = data.copy()
    changed.iloc[cut + 1:, :4] *= 1.5  # the future triples its volatility
    again = backtest(changed, position, sizing="volatility_target", target_volatility=0.10,
                     max_leverage=3.0)
    np.testing.assert_array_equal(result.equity.to_numpy()[:cut], again.equity.to_numpy()[:cut])


# ------------------------------------------------------------------- against the reference


PRICES = load_sample().iloc[:600]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), stop=st.sampled_from([None, 0.01, 0.03, 0.08]),
       take=st.sampled_from([None, 0.02, 0.06]), trail=st.sampled_from([None, 0.02, 0.05]),
       whole=st.booleans())
def test_the_engine_equals_the_reference_loop(seed, stop, take, trail, whole):
    rng = np.random.default_rng(seed)
    target = np.sign(rng.normal(size=len(PRICES))).repeat(1)
    target[rng.random(len(PRICES)) < 0.7] = np.nan  # hold: forward-fill the decisions
    target = pd.Series(target).ffill().fillna(0.0).to_numpy()
    instrument = Instrument(multiplier=5, tick_size=0.25, commission_per_contract=1.0) \
        if whole else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = backtest(PRICES, pd.Series(target, index=PRICES.index), stop_loss=stop,
                          take_profit=take, trailing_stop=trail, instrument=instrument)
    equity, trades = reference(PRICES, target, stop=stop, take=take, trail=trail, whole=whole,
                               multiplier=5 if whole else 1, tick=0.25 if whole else 0,
                               per_contract=1.0 if whole else 0.0)
    np.testing.assert_allclose(result.equity.to_numpy(), equity, rtol=1e-9)
    ours = result.trades
    assert len(ours) == len(trades)
    assert list(ours["exit_reason"]) == [t[6] for t in trades]
    np.testing.assert_allclose(ours["exit_price"], [t[4] for t in trades], rtol=1e-12)
    np.testing.assert_allclose(ours["pnl"], [t[5] for t in trades], rtol=1e-9, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(100, 550))
def test_exits_stay_inside_their_trade_and_bar_and_never_look_ahead(seed, cut):
    rng = np.random.default_rng(seed)
    target = pd.Series(rng.choice([-1.0, 0.0, 1.0], size=len(PRICES)), index=PRICES.index)
    kwargs = {"stop_loss": 0.02, "take_profit": 0.04, "trailing_stop": 0.03}
    result = backtest(PRICES, target, **kwargs)
    trades = result.trades
    assert (trades["exit_bar"] >= trades["entry_bar"]).all()
    low = PRICES["Low"].to_numpy()[trades["exit_bar"]]
    high = PRICES["High"].to_numpy()[trades["exit_bar"]]
    inside = trades["exit_reason"] != "end"
    assert ((trades["exit_price"] >= low - 1e-9) & (trades["exit_price"] <= high + 1e-9))[
        inside].all()
    changed = PRICES.copy()
    changed.iloc[cut + 1:, :4] = changed.iloc[cut + 1:, :4].to_numpy()[::-1]  # another future
    again = backtest(changed, target, **kwargs)
    np.testing.assert_array_equal(result.equity.to_numpy()[:cut], again.equity.to_numpy()[:cut])
    done = trades["exit_bar"] < cut
    pd.testing.assert_frame_equal(trades[done].reset_index(drop=True),
                                  again.trades[again.trades["exit_bar"] < cut]
                                  .reset_index(drop=True))


def test_without_exits_the_two_engines_agree_to_the_last_float():
    data = load_sample()
    close = data["Close"]
    position = pd.Series(np.where(close > close.rolling(20).mean(), 1.0, -1.0), index=data.index)
    plain = backtest(data, position, commission=0.001, slippage=0.0005)
    ordered = backtest(data, position, commission=0.001, slippage=0.0005, stop_loss=0.99)
    np.testing.assert_allclose(ordered.equity, plain.equity, rtol=1e-12)
    columns = ["entry_time", "exit_time", "entry_price", "exit_price", "exit_reason"]
    pd.testing.assert_frame_equal(ordered.trades[columns], plain.trades[columns])


def test_a_sweep_row_with_a_stop_equals_run_backtest(tmp_path):
    from meridian.sweep.run import run_sweep

    result = run_sweep("fld", ["fld_offset=8,12", "stop_loss=0.02,0.05"], workers=1,
                       output_dir=tmp_path, progress=False)
    for _, row in result.table.iterrows():
        single = run_backtest("fld", {"fld_offset": int(row["fld_offset"])},
                              stop_loss=float(row["stop_loss"]))
        assert row["sharpe_ratio"] == single.metrics["sharpe_ratio"]
        assert row["num_trades"] == single.metrics["num_trades"]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stop_loss": -0.1}, "stop_loss=-0.1 is out of range .* must lie in \\[0, 1\\)"),
        ({"take_profit": 1.0}, "take_profit=1.0 is out of range"),
        ({"trailing_stop": 2}, "trailing_stop=2.0 is out of range"),
        ({"target_volatility": 0.1}, "target_volatility=0.1 needs sizing='volatility_target'"),
        ({"multiplier": "fifty"}, "expects float"),
        ({"shares": 10}, "unknown run setting 'shares'; valid settings: initial_capital"),
        ({"sizing": "kelly"}, "sizing='kelly' is not supported"),
        ({"sizing": "volatility_target"}, "needs target_volatility"),
        ({"max_leverage": 0.5}, "max_leverage=0.5 is out of range .* must lie in \\[1, inf\\)"),
        ({"instrument": "ES"}, "instrument must be an Instrument"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, message):
    data = bars([(100, 101, 99, 100)] * 5)
    with pytest.raises(EngineError, match=message) as error:
        backtest(data, pd.Series(1.0, index=data.index), **kwargs)
    assert "\n" not in str(error.value)


def test_bad_levels_and_instruments():
    data = bars([(100, 101, 99, 100)] * 5)
    position = pd.Series(1.0, index=data.index)
    with pytest.raises(EngineError, match="indexed differently from the data"):
        backtest(data, position, stop_loss=pd.Series([90.0] * 4))
    with pytest.raises(EngineError, match="price levels must be positive"):
        backtest(data, position, stop_loss=pd.Series([90.0, -1, 90, 90, 90], index=data.index))
    with pytest.raises(EngineError, match="multiplier must be a positive number"):
        Instrument(multiplier=0)
    with pytest.warns(UserWarning, match="tick_size 25.0 is more than 1%"):
        backtest(data, position, instrument=Instrument(tick_size=25))
