"""Stops in sweeps, the compiled simulator's first call, and vectorbt as a peer.

1. SMA cross on backtesting.py's GOOG, 4,800 combinations (fast 5–64 × slow 70–228 step 2),
   2 workers, whole ``meridian sweep`` command — without exits, and with a 5 % stop on every
   combination (same grid, same run). Target: with stops ≥ 50 % of the rate without.
2. vectorbt's warm in-process ``Portfolio.from_signals`` on the same grid, same next-open
   fills (signals shifted one bar, price = open), long and short. Target: the whole
   ``meridian sweep`` command ≥ 3× vectorbt warm.
3. The per-bar simulator's first call in a fresh process with an empty numba cache (compile),
   and with the cache (load). Target: < 2 s.

``python -m benchmarks orders``; vectorbt is in the ``bench`` extra (never a runtime need).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks.bench_sweep import BIN, WORKERS, _goog_csv

FAST, SLOW = range(5, 65), range(70, 230, 2)
GRID = ["--grid", "fast=5:64:1", "--grid", "slow=70:228:2"]
FIRST_CALL = """
import time, numpy as np, pandas as pd
import meridian.engine as eng
from meridian.data import load_sample
data = load_sample(); c = data["Close"]
pos = pd.Series(np.where(c > c.rolling(20).mean(), 1.0, -1.0), index=data.index)
eng.backtest(data, pos, stop_loss=0.03)
from meridian.engine import _orders
print(_orders.compile_seconds())
"""


def _sweep(extra: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "meridian"), "sweep", "sma_cross", "--data", _goog_csv(), *GRID,
                    *extra, "--workers", str(WORKERS), "--output-dir", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def _vectorbt_warm() -> float | None:
    try:
        import numpy as np
        import vectorbt as vbt
    except ImportError:
        return None
    from backtesting.test import GOOG

    close, open_ = GOOG["Close"], GOOG["Open"]

    def run():
        fast = vbt.MA.run(close, list(FAST)).ma.to_numpy()
        slow = vbt.MA.run(close, list(SLOW)).ma.to_numpy()
        above = np.repeat(fast, len(SLOW), axis=1) > np.tile(slow, (1, len(FAST)))
        before = np.zeros_like(above)
        before[1:] = above[:-1]
        entries, exits = np.zeros_like(above), np.zeros_like(above)
        entries[1:] = (above & ~before)[:-1]  # decided at a close, filled at the next open
        exits[1:] = (~above & before)[:-1]
        portfolio = vbt.Portfolio.from_signals(close, entries, exits, short_entries=exits,
                                               short_exits=entries, price=open_,
                                               init_cash=100_000, freq="1D")
        return portfolio.sharpe_ratio()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()  # compile
        start = time.perf_counter()
        run()
        return time.perf_counter() - start


def _first_call(cache: Path) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", FIRST_CALL], check=True, capture_output=True,
                          text=True, env=env)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    combos = len(FAST) * len(SLOW)
    bars = 2148
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        plain = min(_sweep([], out / f"a{i}") for i in range(2))
        stops = min(_sweep(["--grid", "stop_loss=0.05"], out / f"b{i}") for i in range(2))
        print(f"SMA cross on GOOG, {combos:,} combinations, {WORKERS} workers, whole command:")
        print(f"  without exits: {plain:.2f} s = {combos / plain:,.0f} combos/s "
              f"({combos * bars / plain / 1e6:,.1f} M bars×combos/s)")
        print(f"  with a 5% stop: {stops:.2f} s = {combos / stops:,.0f} combos/s "
              f"({combos * bars / stops / 1e6:,.1f} M bars×combos/s); "
              f"ratio {plain / stops:.2f} (target >= 0.5)")
        vectorbt = _vectorbt_warm()
        if vectorbt is None:
            print("  vectorbt: not installed (pip install -e '.[bench]')")
        else:
            print(f"  vectorbt Portfolio.from_signals, warm, in-process: {vectorbt:.2f} s = "
                  f"{combos / vectorbt:,.0f} combos/s; meridian sweep is {vectorbt / plain:.1f}x "
                  "(target >= 3x)")
        fresh = _first_call(out / "numba-cache")
        cached = _first_call(out / "numba-cache")
        print(f"per-bar simulator first call: {fresh:.2f} s compiling (target < 2 s), "
              f"{cached:.2f} s from the cache")


if __name__ == "__main__":
    main()
