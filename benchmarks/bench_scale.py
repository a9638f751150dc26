"""A registry of 100,000 runs: every command stays as fast as on an empty one.

The runs are a real ``meridian run fld`` record repeated in the seed's export format (curves cut
to every 10th point, metrics jittered, ids and times varied), brought in by
``meridian runs import``. Measured, whole commands unless said:

* ``runs import`` of the 100,000 (target < 60 s), and the registry's bytes per run (≤ 5 KB);
* ``meridian run fld`` on the full registry against the same on an empty one (the peer measured
  in the same run; target ratio ≤ 1.25);
* ``runs list`` (target < 2 s) and ``load_all_runs()`` in-process (target < 5 s);
* the static page: index.html and the chunk files it loads at start (target ≤ 40 MB), time
  until it is interactive in headless Chromium (target < 3 s) and a Sharpe sort;
* ``meridian ui``: first rows on screen (target < 1 s) and a server-side Sharpe sort.

``python -m benchmarks scale quick`` uses 10,000 runs.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bench_sweep import BIN

M = str(BIN / "meridian")


def _timed(*args: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([M, *args, "--output-dir", str(out)], check=True, capture_output=True)
    return time.perf_counter() - start


def _seed(out: Path, target: Path, count: int) -> None:
    subprocess.run([M, "runs", "export", "--path", str(target), "--output-dir", str(out)],
                   check=True, capture_output=True)
    base = json.loads(target.read_text())[0]
    curve = {k: v[::10] for k, v in base["equity"].items()}
    rng = random.Random(1)
    with open(target, "w") as stream:
        stream.write("[")
        for i in range(count):
            record = {**base, "run_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                      "equity": curve, "logs": "",
                      "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:"
                                   f"{i % 60:02d}:{(i // 60) % 60:02d}+00:00",
                      "params": {**base["params"], "fld_offset": 5 + i % 40},
                      "metrics": {k: v * rng.uniform(0.5, 1.5) if isinstance(v, float) else v
                                  for k, v in base["metrics"].items()}}
            stream.write(("," if i else "") + json.dumps(record))
        stream.write("]")


def _chromium(url: str, live: bool) -> tuple[float, float]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("tr[data-run-id]", timeout=120_000)
        ready = time.perf_counter() - start
        start = time.perf_counter()
        page.click("th[data-column='m:sharpe_ratio'] button")
        expect(page.locator("th[data-column='m:sharpe_ratio']")).to_have_attribute(
            "aria-sort", "descending")
        if live:
            page.wait_for_load_state("networkidle")
        sort = time.perf_counter() - start
        browser.close()
    return ready, sort


def main(quick: bool = "quick" in sys.argv) -> None:
    count = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as scratch:
        empty, big = Path(scratch) / "empty", Path(scratch) / "big"
        _timed("run", "fld", out=empty)
        on_empty = min(_timed("run", "fld", "fld_offset=11", out=empty) for _ in range(2))
        seed = Path(scratch) / "seed.json"
        _seed(empty, seed, count)
        imported = _timed("runs", "import", str(seed), out=big)
        registry = (big / "registry.sqlite").stat().st_size
        on_big = min(_timed("run", "fld", "fld_offset=12", out=big) for _ in range(2))
        listed = _timed("runs", "list", out=big)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from meridian.storage import load_all_runs as l;"
                        f"l({str(big)!r})"], check=True)
        loaded = time.perf_counter() - start
        built = _timed("dashboard", out=big)
        page = (big / "index.html").stat().st_size
        rows = sum(p.stat().st_size for p in (big / "dashboard").glob("rows-*.js"))
        details = sum(p.stat().st_size for p in (big / "dashboard").glob("runs-*.js"))
        static_ready, static_sort = _chromium((big / "index.html").as_uri(), live=False)
        server = subprocess.Popen([M, "ui", "--port", "0", "--no-browser", "--output-dir",
                                   str(big)], stdout=subprocess.PIPE, text=True)
        try:
            url = next(line.split()[1] for line in server.stdout if line.startswith("open "))
            live_ready, live_sort = _chromium(url, live=True)
        finally:
            server.terminate()
            server.wait()
    print(f"{count:,} runs in one registry (2 cores):")
    print(f"  runs import: {imported:.1f} s (target < 60 s); registry "
          f"{registry / count / 1024:.1f} KB a run (target <= 5 KB)")
    print(f"  meridian run fld: {on_big:.2f} s vs {on_empty:.2f} s on an empty registry: "
          f"ratio {on_big / on_empty:.2f} (target <= 1.25)")
    print(f"  runs list: {listed:.2f} s (target < 2 s); load_all_runs(): {loaded:.2f} s "
          f"(target < 5 s, interpreter start included)")
    print(f"  meridian dashboard: {built:.1f} s; index.html {page / 1e6:.2f} MB + rows loaded at "
          f"start {rows / 1e6:.1f} MB (target <= 40 MB); details on demand "
          f"{details / 1e6:.0f} MB in {count // 1000} chunks")
    print(f"  static page in Chromium: rows on screen {static_ready:.2f} s (target < 3 s), "
          f"Sharpe sort {static_sort:.2f} s")
    print(f"  meridian ui: rows on screen {live_ready:.2f} s (target < 1 s), Sharpe sort in "
          f"SQLite {live_sort:.2f} s")


if __name__ == "__main__":
    main()
