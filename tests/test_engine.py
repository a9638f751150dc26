"""The engine on a 5-bar example whose every number is computed by hand below."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from meridian.engine import backtest
from meridian.exceptions import EngineError

OPEN = [100.0, 102.0, 104.0, 103.0, 105.0]
CLOSE = [101.0, 103.0, 104.0, 102.0, 106.0]


@pytest.fixture
def bars() -> pd.DataFrame:
    index = pd.bdate_range("2024-01-01", periods=5, name="Date")
    return pd.DataFrame(
        {"Open": OPEN, "High": [max(o, c) + 1 for o, c in zip(OPEN, CLOSE, strict=True)],
         "Low": [min(o, c) - 1 for o, c in zip(OPEN, CLOSE, strict=True)], "Close": CLOSE},
        index=index,
    )


def test_next_open_long_then_flip_short_with_commission(bars):
    c = 0.001
    result = backtest(bars, [1, 1, -1, -1, 0], initial_capital=100_000, commission=c)
    # bar 1 open: buy all-in at 102, commission on the fill, notional = equity after costs
    after_buy = 100_000 / (1 + c)
    long_units = after_buy / 102
    # bar 3 open: flip = close the long (sell at 103, pay c) then short all-in (pay c again)
    before_flip = after_buy + long_units * (103 - 102)
    after_flip = (before_flip - c * long_units * 103) / (1 + c)
    short_units = after_flip / 103
    # bar 4: the target 0 decided at bar 4's close has no next open: close at the last close
    final = after_flip - short_units * (106 - 103) - c * short_units * 106
    expected = [
        100_000,
        after_buy + long_units * (103 - 102),
        after_buy + long_units * (104 - 102),
        after_flip - short_units * (102 - 103),
        final,
    ]
    np.testing.assert_allclose(result.equity.to_numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(result.positions.to_numpy(), [0, 1, 1, -1, -1])

    trades = result.trades
    assert list(trades["direction"]) == ["long", "short"]
    assert list(trades["entry_time"]) == [bars.index[1], bars.index[3]]
    assert list(trades["exit_time"]) == [bars.index[3], bars.index[4]]
    np.testing.assert_allclose(trades["entry_price"], [102, 103])
    np.testing.assert_allclose(trades["exit_price"], [103, 106])
    np.testing.assert_allclose(trades["size"], [long_units, -short_units], rtol=1e-12)
    long_pnl = long_units * (103 - 102) - c * long_units * (102 + 103)
    short_pnl = -short_units * (106 - 103) - c * short_units * (103 + 106)
    np.testing.assert_allclose(trades["pnl"], [long_pnl, short_pnl], rtol=1e-12)
    np.testing.assert_allclose(
        trades["return"], [long_pnl / (long_units * 102), short_pnl / (short_units * 103)]
    )
    assert list(trades["bars_held"]) == [2, 1]
    # trade pnls account for every cent of the equity change
    assert trades["pnl"].sum() == pytest.approx(final - 100_000, rel=1e-12)


def test_fill_at_close_with_slippage(bars):
    s = 0.01
    result = backtest(bars, [0, 1, 1, 0, 0], slippage=s, fill="close")
    units = 100_000 / (103 * (1 + s))  # bought at bar 1's close, price moved against us
    expected = [100_000, units * 103, units * 104, units * 102 * (1 - s), units * 102 * (1 - s)]
    np.testing.assert_allclose(result.equity.to_numpy(), expected, rtol=1e-12)
    trade = result.trades.iloc[0]
    assert trade["entry_price"] == pytest.approx(103 * (1 + s))
    assert trade["exit_price"] == pytest.approx(102 * (1 - s))
    assert trade["pnl"] == pytest.approx(units * (102 * (1 - s) - 103 * (1 + s)))
    assert trade["entry_time"] == bars.index[1] and trade["exit_time"] == bars.index[3]


def test_next_open_never_uses_the_deciding_bar(bars):
    """A long decided at bar 0's close earns nothing from bar 0 and fills at bar 1's open."""
    result = backtest(bars, [1, 0, 0, 0, 0])
    units = 100_000 / 102
    np.testing.assert_allclose(
        result.equity.to_numpy(), [100_000, units * 103, units * 104, units * 104, units * 104]
    )
    assert result.trades.iloc[0]["entry_price"] == 102
    assert result.trades.iloc[0]["exit_price"] == 104  # closed at bar 2's open


def test_short_with_commission_and_slippage(bars):
    c, s = 0.002, 0.005
    result = backtest(bars, [-1, -1, -1, -1, -1], commission=c, slippage=s)
    # sell at 102 × (1 − s), paying c on that price; post-fill short notional = equity
    fill = 102 * (1 - s)
    # E_post = E_pre − units × (102 − fill) − c × units × fill, and units × 102 = E_post
    after = 100_000 / (1 + s + c * (1 - s))
    units = after / 102
    final = after - units * (106 - 102) - units * 106 * s - c * units * 106 * (1 + s)
    assert result.equity.iloc[-1] == pytest.approx(final, rel=1e-12)
    trade = result.trades.iloc[0]
    assert trade["entry_price"] == pytest.approx(fill)
    assert trade["exit_price"] == pytest.approx(106 * (1 + s))
    assert trade["pnl"] == pytest.approx(final - 100_000, rel=1e-12)


def test_resizing_stays_one_trade(bars):
    result = backtest(bars, [0.5, 1.0, 1.0, 0.25, 0.0])
    assert len(result.trades) == 1
    trade = result.trades.iloc[0]
    assert trade["pnl"] == pytest.approx(result.equity.iloc[-1] - 100_000, rel=1e-12)
    np.testing.assert_allclose(result.positions.to_numpy(), [0, 0.5, 1.0, 1.0, 0.25])


def test_no_position_means_flat_equity_and_no_trades(bars):
    result = backtest(bars, np.zeros(5))
    assert (result.equity == 100_000).all()
    assert result.trades.empty
    assert list(result.trades.columns)[:4] == ["entry_time", "exit_time", "direction", "size"]


def test_nan_targets_are_flat(bars):
    result = backtest(bars, [np.nan, np.nan, 1, 1, 1])
    np.testing.assert_array_equal(result.positions.to_numpy(), [0, 0, 0, 1, 1])


def test_equity_that_hits_zero_stays_at_zero():
    index = pd.bdate_range("2024-01-01", periods=4)
    prices = [100.0, 100.0, 250.0, 100.0]
    data = pd.DataFrame({"Open": prices, "High": prices, "Low": prices, "Close": prices}, index)
    result = backtest(data, [-1, -1, -1, -1])
    assert list(result.equity) == [100_000, 100_000, 0, 0]


@pytest.mark.parametrize(
    ("position", "options", "message"),
    [
        ([0, 0, 2, 0, 0], {}, "position at bar 2"),
        ([0, 0, 0], {}, "one value per bar"),
        ([0] * 5, {"fill": "next_close"}, "use one of next_open, close"),
        ([0] * 5, {"commission": -0.1}, "commission=-0.1 is out of range .* \\[0, 0.5\\)"),
        ([0] * 5, {"initial_capital": 0}, "initial_capital=0.0 is out of range"),
    ],
)
def test_bad_inputs_raise_one_line_errors(bars, position, options, message):
    with pytest.raises(EngineError, match=message) as error:
        backtest(bars, position, **options)
    assert "\n" not in str(error.value)


def test_misaligned_series_is_rejected(bars):
    with pytest.raises(EngineError, match="indexed differently"):
        backtest(bars, pd.Series([1.0] * 5))


def test_the_engine_checks_a_frame_like_the_loader():
    from meridian.exceptions import DataError

    index = pd.date_range("2024-01-01", periods=5, freq="D")
    frame = pd.DataFrame({"Open": [1.0, 2, 3, 4, 5], "Close": [1.0, 2, 3, 4, 5]}, index=index)
    assert len(backtest(frame, pd.Series(1.0, index=index)).equity) == 5  # Open, Close enough
    with pytest.raises(DataError, match=r"data row 1 \(2024-01-04\): the index runs newest"):
        backtest(frame.iloc[::-1], pd.Series(1.0, index=index[::-1]))
    with pytest.raises(DataError, match=r"data row 2 \(2024-01-03\): Close is inf"):
        backtest(frame.assign(Close=[1.0, 2, np.inf, 4, 5]), pd.Series(1.0, index=index))
