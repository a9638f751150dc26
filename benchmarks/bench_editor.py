"""Run as Backtest on the fld signals cell (``meridian ui``'s Notebooks page), over HTTP.

Measures, in the same run:
- first click: kernel start, the notebook's earlier cells (parameters, data), the cell;
- warm clicks: the same cell again with another ``fld_offset`` (the kernel and the loaded
  data are reused): median of a few;
- peer: ``meridian run fld`` with the same parameter — the whole-notebook path a user would
  otherwise take to get a recorded run of a changed parameter.

Target: a warm click under 1 s on the FLD sample. Reported: seconds and warm / peer.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WARM_ROUNDS = 7


def _click(base: str, token: str, fld_offset: int) -> float:
    request = urllib.request.Request(
        f"{base}/api/notebooks/fld/run",
        data=json.dumps({"cell": 4, "params": {"fld_offset": str(fld_offset)}}).encode(),
        headers={"X-Meridian-Token": token, "Origin": base,
                 "Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    elapsed = time.perf_counter() - start
    if not answer.get("run_id"):
        raise SystemExit(f"Run as Backtest failed: {answer.get('error')}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "outputs"
        server = subprocess.Popen([str(BIN / "meridian"), "ui", "--port", "0", "--no-browser",
                                   "--output-dir", str(out)], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            url = ""
            while not url:
                line = server.stdout.readline()
                if not line:
                    raise SystemExit("meridian ui did not start")
                url = line.split()[1] if line.startswith("open http") else ""
            found = re.match(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", url)
            base, token = found[1], found[2]
            first = _click(base, token, 17)
            warm = [_click(base, token, 11 + i) for i in range(WARM_ROUNDS)]
        finally:
            server.terminate()
            server.wait(timeout=60)
        peer = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run([str(BIN / "meridian"), "run", "fld", "fld_offset=17",
                            "--output-dir", str(out)], cwd=ROOT, check=True,
                           capture_output=True)
            peer.append(time.perf_counter() - start)
    median, run = statistics.median(warm), statistics.median(peer)
    print(f"Run as Backtest, first click (kernel start + earlier cells): {first:.2f} s")
    print(f"Run as Backtest, warm click (median of {WARM_ROUNDS}): {median:.3f} s "
          f"(target < 1 s: {'met' if median < 1 else 'NOT met'})")
    print(f"meridian run fld fld_offset=17 (median of 2): {run:.2f} s")
    print(f"ratio warm click / meridian run: {median / run:.2f}")


if __name__ == "__main__":
    main()
