"""Bounded memory at any grid size: a million-combination sweep under 1 GiB (target).

FLD over the last 250 bars of the sample, 2 workers, whole ``meridian sweep`` command; the peak
resident memory of the whole process tree is sampled every 50 ms. The only per-combination
state a sweep keeps in memory is 9 bytes (a done flag and the ranking metric); results stream
to Parquet parts on disk. ``python -m benchmarks sweep_memory full`` (or ``make bench-full``)
runs ten million (minutes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.bench_sweep import BIN, WORKERS, _peak_rss


def main(full: bool = "full" in sys.argv) -> None:
    from meridian.data import load_sample

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "last250.csv"
        load_sample(with_cot=False).iloc[-250:][["Open", "High", "Low", "Close", "Volume"]] \
            .to_csv(data, index_label="Date")
        step = "0.00002" if full else "0.0002"  # 100,001 or 10,001 thresholds
        offsets = 100
        command = [str(BIN / "meridian"), "sweep", "fld", "--grid", f"fld_offset=1:{offsets}:1",
                   "--grid", f"cot_threshold=-1:1:{step}", "--data", str(data),
                   "--max-combinations", "20000000",  # 10,000,100: just over the default
                   "--workers", str(WORKERS), "--output-dir", str(Path(scratch) / "out")]
        count = offsets * (100_001 if full else 10_001)
        peak, seconds = _peak_rss(command)
        on_disk = sum(p.stat().st_size for p in (Path(scratch) / "out").rglob("*.parquet"))
    print(f"FLD {count:,}-combination sweep (250 bars), {WORKERS} workers: peak RSS of the "
          f"process tree {peak / 2**20:,.0f} MiB (target < 1,024), {seconds:,.0f} s "
          f"({count / seconds:,.0f} combos/s), results on disk {on_disk / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
