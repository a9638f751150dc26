"""Portfolio backtests: many markets, one account.

1. A 20-market universe of 13 years of daily bars (SYNTHETIC, seeded): portfolio backtests per
   second on one core — the engine from each market's target exposures to equity, trades and
   every metric (target ≥ 100/s), and the whole ``run_portfolio`` (signals of every market
   included). vectorbt's ``Portfolio.from_orders`` with one shared cash account
   (``cash_sharing=True``, target-percent sizing, ``call_seq="auto"``) on the same targets is
   timed in the same run as the peer, when installed (``pip install -e '.[bench]'``).
2. A 100-market universe in a fresh process: its peak resident memory (target < 1 GiB).
3. A sweep of 1,000 combinations over a 10-market universe, whole command, against vectorbt
   (see :func:`sweep_against_vectorbt`; target ≥ 2×).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKETS, BIG = 20, 100
START, END = "2012-01-02", "2024-12-31"


def _frames(count: int):
    from meridian.data._synthetic import generate_ohlcv

    return {f"M{i:03d}": generate_ohlcv(1000 + i, START, END) for i in range(count)}


def _positions(frames):
    from meridian.strategies import get_strategy

    signals = get_strategy("sma_cross").signals
    return {name: signals(frame, fast=10, slow=30) for name, frame in frames.items()}


def _universe_file(frames, folder: Path, sizing: str) -> Path:
    """Each market's bars as CSV in ``folder`` and a universe file naming them."""
    lines = [f'sizing = "{sizing}"\ncommission = 0.0002\n']
    for name, frame in frames.items():
        path = folder / f"{name}.csv"
        frame.to_csv(path, index_label="Date")
        lines.append(f'[[market]]\nname = "{name}"\ndata = "{path}"\n')
    universe = folder / "u.toml"
    universe.write_text("".join(lines))
    return universe


def _engine_rate(frames, positions, seconds: float = 3.0) -> tuple[float, float]:
    from meridian.engine import compute_metrics
    from meridian.engine.portfolio import backtest_portfolio
    from meridian.settings import RunSettings

    settings = RunSettings(sizing="risk_parity", commission=0.0002)
    started = time.perf_counter()
    compute_metrics(backtest_portfolio(frames, positions, settings).engine)  # compile / load
    first = time.perf_counter() - started
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        compute_metrics(backtest_portfolio(frames, positions, settings).engine)
        runs += 1
    return runs / (time.perf_counter() - started), first


def _run_portfolio_rate(frames) -> float:
    from meridian.api import run_portfolio

    with tempfile.TemporaryDirectory() as scratch:
        universe = _universe_file(frames, Path(scratch), "risk_parity")
        run_portfolio("sma_cross", universe)
        started, runs = time.perf_counter(), 0
        while time.perf_counter() - started < 3.0:
            run_portfolio("sma_cross", universe)
            runs += 1
        return runs / (time.perf_counter() - started)


def _vectorbt_rate(frames, positions) -> float | None:
    try:
        import numpy as np
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return None
    close = pd.DataFrame({n: f["Close"] for n, f in frames.items()})
    open_ = pd.DataFrame({n: f["Open"] for n, f in frames.items()})
    target = pd.DataFrame(positions).fillna(0.0).shift(1).fillna(0.0) / len(frames)
    size = target.where(target.diff().fillna(target) != 0, np.nan)  # trade on changes only

    def once():
        portfolio = vbt.Portfolio.from_orders(
            close, size, size_type="targetpercent", price=open_, fees=0.0002,
            init_cash=100_000, cash_sharing=True, group_by=True, call_seq="auto", freq="1D")
        portfolio.stats(silence_warnings=True)

    once()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < 3.0:
        once()
        runs += 1
    return runs / (time.perf_counter() - started)


def _memory_child() -> None:
    frames = _frames(BIG)
    positions = _positions(frames)
    from meridian.engine import compute_metrics
    from meridian.engine.portfolio import backtest_portfolio
    from meridian.settings import RunSettings

    result = backtest_portfolio(frames, positions, RunSettings(
        sizing="volatility_target", target_volatility=0.12, max_leverage=2.0))
    compute_metrics(result.engine)
    len(result.trades)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    frames = _frames(MARKETS)
    positions = _positions(frames)
    bars = len(next(iter(frames.values())))
    rate, first = _engine_rate(frames, positions)
    print(f"{MARKETS} markets × {bars:,} daily bars (13 years), risk parity, one core: "
          f"{rate:,.0f} portfolio backtests/s (target ≥ 100), first call {first:.2f} s")
    print(f"  run_portfolio (files read, signals of every market, engine, metrics): "
          f"{_run_portfolio_rate(frames):,.1f} runs/s")
    peer = _vectorbt_rate(frames, positions)
    if peer is None:
        print("  vectorbt: not installed (pip install -e '.[bench]')")
    else:
        print(f"  vectorbt Portfolio.from_orders, cash sharing, same targets: {peer:,.1f}/s "
              f"→ Meridian {rate / peer:.1f}× vectorbt")
    peak = int(subprocess.run([sys.executable, "-c", "from benchmarks.bench_portfolio import "
                               "_memory_child; _memory_child()"], capture_output=True,
                              text=True, check=True).stdout.split()[-1])
    print(f"{BIG}-market universe (13 years, volatility target): peak RSS "
          f"{peak / 2**20:,.0f} MiB (target < 1,024)")
    sweep_against_vectorbt()


if __name__ == "__main__":
    main()


def sweep_against_vectorbt(markets: int = 10, combinations: int = 1_000) -> None:
    """A 1,000-combination sweep over a 10-market universe, whole ``meridian sweep`` command,
    against vectorbt's warm ``Portfolio.from_orders`` (one shared cash account per
    combination, ``call_seq="auto"``) on the same target sizes (target ≥ 2×)."""
    import numpy as np
    import pandas as pd

    frames = _frames(markets)
    fast = list(range(2, 42))  # 40 × 25 = 1,000 combinations
    slow = list(range(45, 170, 5))
    with tempfile.TemporaryDirectory() as scratch:
        universe = _universe_file(frames, Path(scratch), "equal_weight")
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "meridian"), "sweep", "sma_cross",
                        "--universe", str(universe), "--grid", f"fast={','.join(map(str, fast))}",
                        "--grid", f"slow={','.join(map(str, slow))}", "--workers", "2",
                        "--output-dir", str(Path(scratch) / "out")], check=True,
                       capture_output=True)
        ours = time.perf_counter() - started
    try:
        import vectorbt as vbt
    except ImportError:
        print(f"sweep over {markets} markets, {combinations:,} combinations, whole command: "
              f"{ours:.1f} s ({combinations / ours:,.0f} combos/s); vectorbt not installed")
        return
    from meridian.strategies import get_strategy

    signals = get_strategy("sma_cross").signals
    close = pd.DataFrame({n: f["Close"] for n, f in frames.items()})
    open_ = pd.DataFrame({n: f["Open"] for n, f in frames.items()})

    def peer() -> float:
        started = time.perf_counter()
        for a in fast:  # the same targets: one vectorbt call per fast value, all slows at once
            blocks, prices, opens = [], [], []
            for b in slow:
                target = pd.DataFrame({n: signals(f, fast=a, slow=b) for n, f in frames.items()})
                target = target.fillna(0.0).shift(1).fillna(0.0) / markets
                blocks.append(target.where(target.diff().fillna(target) != 0, np.nan))
                prices.append(close)
                opens.append(open_)
            size = pd.concat(blocks, axis=1, keys=range(len(slow)))
            portfolio = vbt.Portfolio.from_orders(
                pd.concat(prices, axis=1, keys=range(len(slow))), size,
                size_type="targetpercent", price=pd.concat(opens, axis=1, keys=range(len(slow))),
                fees=0.0002, init_cash=100_000, cash_sharing=True, group_by=0,
                call_seq="auto", freq="1D")
            portfolio.sharpe_ratio()
        return time.perf_counter() - started

    peer()  # warm: numba compiled
    theirs = peer()
    print(f"sweep over {markets} markets × 13 years, {combinations:,} combinations, 2 workers, "
          f"whole `meridian sweep` command: {ours:.1f} s ({combinations / ours:,.0f} combos/s); "
          f"vectorbt from_orders with cash sharing, warm, in-process: {theirs:.1f} s → "
          f"{theirs / ours:.1f}× (target ≥ 2×)")
