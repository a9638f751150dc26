"""``meridian run fld`` against the two CLIs it replaces, timed in the same run.

Peer: ``papermill fld.ipynb out.ipynb`` followed by ``jupyter nbconvert --to html out.ipynb``
on the same notebook (converted to .ipynb beforehand, outside the timing). Ours does more
(validation, plotly.js inlined, scraps read back, registry row) in one process. Target: ratio
ours / peer ≤ 1.0. Wall-clock medians of a few rounds, interleaved so both see the same load.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jupytext

ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        notebook = work / "fld.ipynb"
        jupytext.write(jupytext.read(ROOT / "notebooks" / "fld.py"), notebook)
        ours, peer = [], []
        for _ in range(ROUNDS):
            ours.append(_timed([str(BIN / "meridian"), "run", "fld", "--output-dir",
                                str(work / "outputs")], ROOT))
            peer.append(
                _timed([str(BIN / "papermill"), str(notebook), str(work / "out.ipynb"),
                        "-p", "fld_offset", "10", "--no-progress-bar"], ROOT)
                + _timed([str(BIN / "jupyter"), "nbconvert", "--to", "html",
                          str(work / "out.ipynb")], ROOT)
            )
    ours_s, peer_s = statistics.median(ours), statistics.median(peer)
    print(f"meridian run fld:                 {ours_s:.2f} s (median of {ROUNDS})")
    print(f"papermill CLI + nbconvert CLI:    {peer_s:.2f} s")
    print(f"ratio meridian / peer:            {ours_s / peer_s:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
