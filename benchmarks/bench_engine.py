"""Engine throughput: complete FLD backtests per second on the 13-year daily sample, one core.

A backtest here is what a sweep does per combination: ``fld.signals`` → ``backtest`` (equity
and trades) → ``compute_metrics``. The peer is backtesting.py running the same positions on
the same data, timed in the same process. Target: ≥ 1,000 backtests/s.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings

from meridian.api import run_backtest
from meridian.data import load_sample
from meridian.engine import backtest, compute_metrics
from meridian.strategies import fld


def _rate(work, seconds: float = 3.0) -> float:
    work()  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work()
        count += 1
    return count / elapsed


def main() -> None:
    data = load_sample()
    offsets = iter(range(10**9))

    def ours():
        position = fld.signals(data, fld_offset=5 + next(offsets) % 30)
        compute_metrics(backtest(data, position, commission=0.001))

    from backtesting import Backtest, Strategy

    position = fld.signals(data, fld_offset=10).to_numpy()

    class Follow(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            if i and position[i] != position[i - 1]:
                self.position.close()
                if position[i]:
                    (self.buy if position[i] > 0 else self.sell)(size=0.999)

    def peer():
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            Backtest(data, Follow, cash=100_000, commission=0.001, finalize_trades=True).run()

    ours_rate = _rate(ours)
    api_rate = _rate(lambda: run_backtest("fld", {"fld_offset": 10}, data=data))
    peer_rate = _rate(peer, seconds=5.0)
    print(f"data: {len(data)} daily bars ({data.index[0].date()} .. {data.index[-1].date()})")
    print(f"meridian signals+backtest+metrics: {ours_rate:,.0f} backtests/s (target >= 1,000)")
    print(f"meridian run_backtest (full result): {api_rate:,.0f} backtests/s")
    print(f"backtesting.py same positions:     {peer_rate:,.1f} backtests/s")
    print(f"ratio meridian / backtesting.py:   {ours_rate / peer_rate:,.0f}x")
