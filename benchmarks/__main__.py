"""Run every benchmark: ``python -m benchmarks [name ...]`` (names: the bench_*.py modules)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(selected: list[str]) -> None:
    names = sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    selected = [name for name in selected if name != "quick"]  # "quick": a flag for each
    for name in selected or names:
        if name not in names:
            sys.exit(f"unknown benchmark {name!r}; available: {', '.join(names)}")
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.bench_{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
