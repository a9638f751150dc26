"""Sweep throughput against backtesting.py, single-core FLD throughput, and peak memory.

1. SMA cross on backtesting.py's own GOOG sample, a 14,000-combination grid and the same
   worker count: the whole ``meridian sweep`` command, start-up included, against
   ``Backtest.optimize`` on every fifth fast window of the same grid (2,800 combinations: its
   cost per combination is the grid's, and the whole grid took it 4 minutes of ``make
   bench``'s 10). Target: ≥ 50× backtesting.py's combinations per second.
2. FLD on the 13-year daily sample with ``--workers 1``: combinations per second on one core.
3. A 100,000-combination FLD sweep: peak resident memory of the whole process tree, sampled
   from /proc. Target: < 1 GiB.
4. The speed issue's 100,250-combination FLD sweep (250 offsets × 401 COT thresholds), whole
   command, bar × combinations a second (target ≥ 5×10⁷), on the local pool and on a Dask
   ``LocalCluster`` with as many workers, alternated, best of three each. Target: Dask ≥ 0.8 of
   the local pool's speed.

``python -m benchmarks sweep [quick]``: ``quick`` shrinks grids for a fast look.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

WORKERS = 2
BIN = Path(sys.executable).parent


def _goog_csv() -> str:
    import backtesting

    return str(Path(backtesting.__file__).parent / "test" / "GOOG.csv")


class _Peer:
    """backtesting.py's canonical SmaCross (module level: optimize pickles it to workers)."""

    strategy = None

    @classmethod
    def make(cls):
        if cls.strategy is None:
            from backtesting import Strategy
            from backtesting.lib import crossover
            from backtesting.test import SMA

            class SmaCross(Strategy):
                fast = 10
                slow = 20

                def init(self):
                    self.sma1 = self.I(SMA, self.data.Close, self.fast)
                    self.sma2 = self.I(SMA, self.data.Close, self.slow)

                def next(self):
                    if crossover(self.sma1, self.sma2):
                        self.position.close()
                        self.buy()
                    elif crossover(self.sma2, self.sma1):
                        self.position.close()
                        self.sell()

            SmaCross.__qualname__ = "SmaCross"
            globals()["SmaCross"] = cls.strategy = SmaCross
        return cls.strategy


def _peer_rate(fast: range, slow: range) -> tuple[float, int]:
    from backtesting import Backtest
    from backtesting.test import GOOG

    backtest = Backtest(GOOG, _Peer.make(), cash=100_000, finalize_trades=True)
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        _, heatmap = backtest.optimize(fast=fast, slow=slow, maximize="Sharpe Ratio",
                                       return_heatmap=True, max_tries=None)
    return len(heatmap) / (time.perf_counter() - start), len(heatmap)


def _sweep(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "meridian"), "sweep", *args, "--output-dir", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
    return total


def _peak_rss(command: list[str]) -> tuple[int, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0

    def sample():
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.wait()
    sampler.join()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with {process.returncode}")
    return peak, time.perf_counter() - start


def main(quick: bool = "quick" in sys.argv) -> None:
    # 70 × 200 = 14,000 combinations: a real sweep, long enough that start-up (≈ 0.6 s of
    # imports, saving and the report) does not dominate; backtesting.py needs minutes for it.
    fast, slow = (range(5, 75), range(80, 480, 2)) if not quick else (range(5, 15), range(60, 80))
    combos = len(fast) * len(slow)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        ours = _sweep(["sma_cross", "--data", _goog_csv(),
                       "--grid", f"fast={fast.start}:{fast.stop - 1}:1",
                       "--grid", f"slow={slow.start}:{slow.stop - 1}:{slow.step}",
                       "--workers", str(WORKERS)], out / "a")
        ours_rate = combos / ours
        print(f"SMA cross on GOOG, {combos:,} combinations, {WORKERS} workers:")
        print(f"  meridian sweep (whole command):  {ours:.2f} s = {ours_rate:,.0f} combos/s")
        peer_rate, peer_combos = _peer_rate(fast[::5], slow)
        print(f"  backtesting.py optimize, {peer_combos:,} of them (every fifth fast window): "
              f"{peer_combos / peer_rate:.1f} s = {peer_rate:,.1f} combos/s")
        print(f"  ratio: {ours_rate / peer_rate:,.0f}x (target >= 50x)")

        offsets, thresholds = ("1:60:1", "-1:1:0.05") if not quick else ("1:20:1", "-1:1:0.5")
        single = _sweep(["fld", "--grid", f"fld_offset={offsets}", "--grid",
                         f"cot_threshold={thresholds}", "--workers", "1"], out / "b")
        count = 60 * 41 if not quick else 20 * 5
        print(f"FLD on the 13-year sample, 1 worker: {count:,} combinations in {single:.2f} s "
              f"= {count / single:,.0f} combos/s (whole command)")

        thresholds = "-1:1:0.002" if not quick else "-1:1:0.02"
        command = [str(BIN / "meridian"), "sweep", "fld", "--grid", "fld_offset=1:100:1",
                   "--grid", f"cot_threshold={thresholds}", "--workers", str(WORKERS),
                   "--output-dir", str(out / "c")]
        peak, seconds = _peak_rss(command)
        count = 100 * (1001 if not quick else 101)
        print(f"FLD {count:,}-combination sweep, {WORKERS} workers: peak RSS of the process "
              f"tree {peak / 2**20:,.0f} MiB (target < 1,024), {seconds:.1f} s "
              f"({count / seconds:,.0f} combos/s)")

        grid = ["fld", "--grid", "fld_offset=1:250:1", "--grid",
                f"cot_threshold=-1:1:{0.005 if not quick else 0.05}", "--workers", str(WORKERS)]
        count, bars = 250 * (401 if not quick else 41), 3392
        times: dict[str, list[float]] = {"local": [], "dask": []}
        for attempt in range(3):
            for executor in times:
                times[executor].append(_sweep([*grid, "--executor", executor],
                                              out / f"d{executor}{attempt}"))
        local, dask = min(times["local"]), min(times["dask"])
        print(f"FLD {count:,}-combination sweep, {WORKERS} workers, whole command: local pool "
              f"{local:.2f} s = {count * bars / local:.2e} bar x combinations/s (target >= 5e7); "
              f"Dask LocalCluster {dask:.2f} s; Dask at {local / dask:.2f} of local "
              "(target >= 0.8)")
    os.sync()


if __name__ == "__main__":
    main()
