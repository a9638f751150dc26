"""Run the benchmarks: ``python -m benchmarks [name ...] [quick | full]`` (names: the
bench_*.py modules; ``quick`` shrinks grids for a fast look, ``full`` adds the ten-million-
combination sweep).

Each benchmark runs in a process of its own, so the peak memory printed after it is its own
(the largest process it started, from ``wait4``), never an earlier benchmark's.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

FLAGS = ("quick", "full")


def names() -> list[str]:
    return sorted(info.name.removeprefix("bench_")
                  for info in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if info.name.startswith("bench_"))


def run(name: str, flags: list[str]) -> bool:
    """One benchmark in its own process; prints its time and peak memory; True if it passed."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c",
                                f"from benchmarks.bench_{name} import main; main()", *flags])
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    print(f"-- {name}: {time.perf_counter() - started:,.0f} s, peak RSS of its largest "
          f"process {usage.ru_maxrss / 1024:,.0f} MiB"
          + ("" if process.returncode == 0 else f", FAILED (exit {process.returncode})"),
          flush=True)
    return process.returncode == 0


def main(arguments: list[str]) -> None:
    available = names()
    flags = [a for a in arguments if a in FLAGS]
    selected = [a for a in arguments if a not in FLAGS]
    unknown = [name for name in selected if name not in available]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; available: {', '.join(available)}")
    failed = []
    for name in selected or available:
        print(f"== {name}", flush=True)
        if not run(name, flags):
            failed.append(name)
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
