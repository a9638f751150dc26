"""Walk-forward throughput: a 2,000-combination FLD grid over 10 yearly windows (3y:1y),
whole ``meridian sweep`` command, reported as combinations × windows per second beside the
plain sweep of the same grid (same run). Each window's training part is a full backtest of
every combination; signals are computed once per combination for all windows.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.bench_sweep import BIN, WORKERS

GRID = ["--grid", "fld_offset=1:100:1", "--grid", "cot_threshold=-0.95:0.95:0.1"]  # 2,000


def _sweep(extra: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "meridian"), "sweep", "fld", *GRID, *extra, "--workers",
                    str(WORKERS), "--output-dir", str(out)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    combos, windows = 2000, 10
    with tempfile.TemporaryDirectory() as scratch:
        plain = _sweep([], Path(scratch) / "a")
        walk = _sweep(["--walk-forward", "3y:1y"], Path(scratch) / "b")
        stored = sum(f.stat().st_size for f in (Path(scratch) / "b").rglob("returns-*.npz"))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest process
    print(f"FLD, {combos:,} combinations, {WORKERS} workers, whole command:")
    print(f"  plain sweep: {plain:.2f} s = {combos / plain:,.0f} combos/s")
    print(f"  walk-forward 3y:1y ({windows} windows): {walk:.2f} s = "
          f"{combos * windows / walk:,.0f} combos × windows/s "
          f"({combos * (windows + 1) / walk:,.0f} backtests/s)")
    print(f"  return series kept for PBO/DSR: {stored / 2**20:.1f} MiB on disk (float32); "
          f"largest process peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
