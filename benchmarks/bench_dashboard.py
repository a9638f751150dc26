"""The dashboard (``outputs/index.html``) with 10,000 runs in headless Chromium.

Measures, in the same browser and the same run:
- ours: ``meridian.dashboard.build_dashboard`` over a registry of 10,000 synthetic runs (two
  strategies, 5% failed, 500-point equity curves), then the page's time to interactive (the
  later of the app's ready mark and the load event) and one click on the Sharpe header
  (sort + re-render, until the next frame);
- peer: the same 10,000 rows as ``pandas.DataFrame.to_html()`` in a bare page (what a notebook
  user would export), made sortable with the classic snippet that sorts the table's ``<tr>``
  elements by cell text and re-appends them. Time to interactive = its load event.

Target: ours loads and sorts in under 2 s. Medians of a few rounds, pages interleaved.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

RUNS = 10_000
ROUNDS = 5
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"]

PEER_SORT = """
document.querySelectorAll("table.dataframe thead th").forEach(function (th, column) {
  th.style.cursor = "pointer";
  var dir = 1;
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var value = function (row) {
      var text = row.cells[column].textContent, number = parseFloat(text.replace(/[$,%]/g, ""));
      return isNaN(number) ? text : number;
    };
    dir = -dir;
    rows.sort(function (a, b) {
      var x = value(a), y = value(b);
      return x < y ? -dir : x > y ? dir : 0;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

MEASURE_LOAD = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const ready = window.meridianDashboard ? window.meridianDashboard.readyAt : 0;
  return Math.max(nav.loadEventEnd, ready);
}"""

MEASURE_SORT = """(selector) => new Promise((resolve) => {
  const start = performance.now();
  document.querySelector(selector).click();
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
})"""


def _records(rng: np.random.Generator) -> list[dict]:
    """10,000 registry records built from two real backtests, perturbed."""
    from meridian.api import run_backtest

    bases = {"fld": run_backtest("fld", {"fld_offset": 10}).to_dict(),
             "sma_cross": run_backtest("sma_cross", {}).to_dict()}
    start = datetime(2025, 1, 1, tzinfo=UTC)
    records = []
    for n in range(RUNS):
        strategy = "fld" if n % 5 < 3 else "sma_cross"
        base = bases[strategy]
        params = ({"fld_offset": int(rng.integers(3, 40)),
                   "cot_threshold": round(float(rng.uniform(0, 0.5)), 2),
                   "allow_short": bool(rng.integers(0, 2))}
                  if strategy == "fld" else
                  {"fast": int(rng.integers(2, 30)), "slow": int(rng.integers(31, 120))})
        record = {"run_id": str(uuid.uuid4()), "timestamp": start + timedelta(minutes=n),
                  "strategy_name": strategy, "params": params, "kind": "api"}
        if n % 20 == 19:
            record.update(status="failed", error="ValueError: need 1 <= fast < slow")
        else:
            values = np.asarray(base["equity"]["values"])
            drift = np.cumprod(1 + rng.normal(0, 0.004, len(values)))
            record.update(
                status="success",
                metrics={k: (None if v is None else float(v) * rng.uniform(0.3, 1.7))
                         for k, v in base["metrics"].items()},
                equity={"index": base["equity"]["index"], "values": (values * drift).tolist()},
            )
        records.append(record)
    return records


def _fill_registry(out: Path, records: list[dict]) -> None:
    """Insert the records in one transaction (save_run, one transaction per run, is correct
    but makes building a 10,000-run benchmark registry take minutes)."""
    from meridian.registry.records import to_row
    from meridian.storage import Registry

    Registry(out).insert_rows([to_row(record, out) for record in records])


def _peer_page(out: Path, target: Path) -> None:
    """The same runs as a plain pandas HTML table with a sortable-table snippet."""
    from meridian.engine.metrics import format_metric
    from meridian.storage import load_all_runs
    from meridian.viz import format_params

    shown = ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "num_trades")
    frame = pd.DataFrame([{
        "run": r["run_id"][:8], "time": r["timestamp"][:19].replace("T", " "),
        "strategy": r["strategy_name"], "parameters": format_params(r["params"]),
        "status": r["status"],
        **{name: format_metric(name, r["metrics"].get(name)) for name in shown},
        "report": "—",
    } for r in load_all_runs(out)])
    target.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>runs</title></head><body>"
        + frame.to_html(index=False) + f"<script>{PEER_SORT}</script></body></html>",
        encoding="utf-8",
    )


def _measure(browser, url: str, sort_selector: str) -> tuple[float, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="load", timeout=120_000)
    if "index.html" in url:  # ours loads its rows after the load event: wait until shown
        page.wait_for_selector("html[data-ready='1']", timeout=120_000)
    loaded = page.evaluate(MEASURE_LOAD)
    sorted_ms = page.evaluate(MEASURE_SORT, sort_selector)
    page.close()
    if errors:
        raise RuntimeError(f"{url}: {errors[0]}")
    return loaded / 1000, sorted_ms / 1000


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import chromium_path
    from playwright.sync_api import sync_playwright

    from meridian.dashboard import build_dashboard

    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "outputs"
        _fill_registry(out, _records(rng))
        build_times = []
        for _ in range(3):
            started = time.perf_counter()
            index = build_dashboard(out)
            build_times.append(time.perf_counter() - started)
        peer = Path(scratch) / "peer.html"
        _peer_page(out, peer)
        ours_load, ours_sort, peer_load, peer_sort = [], [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(),
                                                 args=CHROMIUM_FLAGS)
            for _ in range(ROUNDS):
                load, sort = _measure(browser, index.as_uri(),
                                      "th[data-column='m:sharpe_ratio'] button")
                ours_load.append(load)
                ours_sort.append(sort)
                load, sort = _measure(browser, peer.as_uri(),
                                      "table.dataframe thead th:nth-child(8)")
                peer_load.append(load)
                peer_sort.append(sort)
            browser.close()
        size_ours = (index.stat().st_size + sum(
            p.stat().st_size for p in (out / "dashboard").glob("rows-*.js"))) / 1e6
        size_peer = peer.stat().st_size / 1e6

    med = statistics.median
    ours_total, peer_total = med(ours_load) + med(ours_sort), med(peer_load) + med(peer_sort)
    print(f"runs in the registry:              {RUNS:,}")
    print(f"build the page (Python):           {med(build_times):.2f} s, {size_ours:.1f} MB "
          f"(peer page {size_peer:.1f} MB)")
    print(f"ours: time to interactive          {med(ours_load):.2f} s (median of {ROUNDS})")
    print(f"ours: Sharpe header click sort     {med(ours_sort) * 1000:.0f} ms")
    print(f"peer: DataFrame.to_html load       {med(peer_load):.2f} s")
    print(f"peer: sortable-table click sort    {med(peer_sort) * 1000:.0f} ms")
    print(f"load + sort: ours {ours_total:.2f} s, peer {peer_total:.2f} s, "
          f"ratio ours / peer {ours_total / peer_total:.2f} (target: ours < 2 s)")


if __name__ == "__main__":
    main()
