"""Our engine against backtesting.py (the best-known peer) under the same conventions:
next-open market fills, full equity per position, commission on both legs, flips as
close-then-open, open trades closed at the last close. Same trades, same equity."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.test import GOOG

from meridian.engine import backtest
from meridian.strategies import fld, sma_cross

CAPITAL = 1e9  # backtesting.py trades whole units; a large account makes rounding negligible


def _peer(data: pd.DataFrame, position: pd.Series, commission: float):
    targets = position.to_numpy()

    class FollowTargets(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            target = targets[i]
            previous = targets[i - 1] if i else 0.0
            if target == previous:
                return
            self.position.close()
            if target > 0:
                self.buy(size=0.999999)
            elif target < 0:
                self.sell(size=0.999999)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = Backtest(data, FollowTargets, cash=CAPITAL, commission=commission,
                       finalize_trades=True).run()
    return run


@pytest.mark.parametrize("commission", [0.0, 0.002])
@pytest.mark.parametrize(
    "make_position",
    [
        lambda d: sma_cross.signals(d, 10, 20),
        lambda d: fld.signals(d, 12),
        lambda d: fld.signals(d, 20, allow_short=False),
    ],
    ids=["sma_cross", "fld", "fld_long_only"],
)
def test_same_trades_and_equity_as_backtesting_py(make_position, commission):
    data = GOOG.copy()
    position = make_position(data)
    # backtesting.py force-closes at the last bar's *open*, we at its close (as documented):
    # end flat a few bars early so every trade is closed by a signal in both engines.
    position.iloc[-5:] = 0.0
    ours = backtest(data, position, initial_capital=CAPITAL, commission=commission)
    peer = _peer(data, position, commission)

    peer_trades = peer["_trades"].sort_values("EntryTime").reset_index(drop=True)
    trades = ours.trades
    assert len(trades) == len(peer_trades) > 10
    assert (trades["entry_time"].to_numpy() == peer_trades["EntryTime"].to_numpy()).all()
    assert (trades["exit_time"].to_numpy() == peer_trades["ExitTime"].to_numpy()).all()
    np.testing.assert_allclose(trades["entry_price"], peer_trades["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(trades["exit_price"], peer_trades["ExitPrice"], rtol=1e-12)
    assert (np.sign(trades["size"]) == np.sign(peer_trades["Size"])).all()
    np.testing.assert_allclose(trades["return"], peer_trades["ReturnPct"], atol=1e-5)

    peer_equity = peer["_equity_curve"]["Equity"].to_numpy()
    relative_gap = np.abs(ours.equity.to_numpy() / peer_equity - 1)
    assert relative_gap.max() < 1e-4  # within 0.01% on every bar


def _peer_with_stops(data: pd.DataFrame, position: pd.Series, stop: float):
    """backtesting.py following the same targets, each entry with a stop ``stop`` away from
    the signal bar's close (a level fixed when the order is placed)."""
    targets = position.to_numpy()

    class FollowTargetsWithStops(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            target = targets[i]
            previous = targets[i - 1] if i else 0.0
            if target == previous:
                return
            self.position.close()
            close = self.data.Close[-1]
            if target > 0:
                self.buy(size=0.999999, sl=close * (1 - stop))
            elif target < 0:
                self.sell(size=0.999999, sl=close * (1 + stop))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(data, FollowTargetsWithStops, cash=CAPITAL, commission=0.0,
                        finalize_trades=True).run()


def test_stops_match_backtesting_py_trade_for_trade():
    """A stop 3 % from the signal bar's close, given to our engine as a price level decided at
    that close (the FLD-style level Series), exits where backtesting.py's ``sl=`` does."""
    data = GOOG.copy()
    position = sma_cross.signals(data, 10, 20)
    position.iloc[-5:] = 0.0
    close = data["Close"]
    changes = position.ne(position.shift(1).fillna(0.0))
    level = pd.Series(np.where(position > 0, close * 0.97, close * 1.03), index=data.index)
    level = level.where(changes).ffill().where(position != 0)
    ours = backtest(data, position, initial_capital=CAPITAL, stop_loss=level)
    peer = _peer_with_stops(data, position, 0.03)
    peer_trades = peer["_trades"].sort_values("EntryTime").reset_index(drop=True)
    trades = ours.trades
    assert len(trades) == len(peer_trades) and (trades["exit_reason"] == "stop_loss").sum() > 20
    assert (trades["exit_time"].to_numpy() == peer_trades["ExitTime"].to_numpy()).all()
    np.testing.assert_allclose(trades["exit_price"], peer_trades["ExitPrice"], rtol=1e-12)
    peer_equity = peer["_equity_curve"]["Equity"].to_numpy()
    assert np.abs(ours.equity.to_numpy() / peer_equity - 1).max() < 1e-4
