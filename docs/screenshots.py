"""Regenerate the README's screenshots from real runs: ``python docs/screenshots.py``.

Runs ``meridian run fld`` on the S&P 500 with the NASDAQ as its benchmark (daily bars that
ship with the ``arch`` package: real market data, ``pip install arch``) in a scratch output
folder, then photographs the pages in headless Chromium:

* ``docs/report-head.png``: the report's header, metrics and equity against both benchmarks;
* ``docs/report-tearsheet.png``: the tear sheet (benchmark figures, worst drawdowns,
  yearly returns, rolling beta);
* ``docs/dashboard.png``: the runs page (``outputs/index.html``) after a few runs;
* ``docs/meridian-ui.png``: the same page in ``meridian ui``, a run's details and re-run form;
* ``docs/meridian-notebooks.png``: the fld notebook in ``meridian ui``, its signals cell run
  as a backtest with ``fld_offset=17``.

A maintainer's tool, not part of the package: nothing here runs in the suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MERIDIAN = Path(sys.executable).with_name("meridian")
WIDTH = 1400


def _market_files(folder: Path) -> tuple[Path, Path]:
    try:
        from arch.data import nasdaq, sp500
    except ImportError:
        sys.exit("docs/screenshots.py needs the arch package for its real data: pip install arch")
    columns = ["Open", "High", "Low", "Close", "Volume"]
    spx, ndx = folder / "spx.csv", folder / "ndx.csv"
    sp500.load()[columns].to_csv(spx, index_label="Date")
    nasdaq.load()[columns].to_csv(ndx, index_label="Date")
    return spx, ndx


def _run(out: Path, *args: str) -> Path:
    """One ``meridian run``; the path of its report."""
    done = subprocess.run([str(MERIDIAN), "run", *args, "--output-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=True)
    return Path(re.findall(r"report: (\S+report\.html)", done.stdout)[-1])


def _between(page, heading: str, last_chart: str, path: Path) -> None:
    """A picture of the page from the heading ``heading`` to the bottom of the chart titled
    ``last_chart``."""
    top = page.locator("h2", has_text=heading).first.bounding_box()["y"] - 8
    chart = page.locator(".js-plotly-plot").filter(
        has=page.locator(".gtitle", has_text=last_chart)).first.bounding_box()
    page.screenshot(path=str(path), full_page=True, clip={
        "x": 0, "y": top, "width": WIDTH, "height": chart["y"] + chart["height"] + 8 - top})


def _ui(out: Path) -> tuple[subprocess.Popen, str]:
    """``meridian ui`` on the scratch outputs (the repository's notebooks), and its URL."""
    server = subprocess.Popen([str(MERIDIAN), "ui", "--port", "0", "--no-browser",
                               "--output-dir", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    for line in server.stdout:
        if line.startswith("open http://"):
            return server, line.split()[1]
    sys.exit("meridian ui did not start")


def _ui_pages(browser, out: Path) -> None:
    server, url = _ui(out)
    try:
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(url)
        page.wait_for_selector("html[data-ready='1']")
        page.locator("tr.run button.run-id").last.click()
        page.wait_for_selector("#details:not([hidden])")
        page.screenshot(path=str(DOCS / "meridian-ui.png"), full_page=True)
        page.close()
        page = browser.new_page(viewport={"width": 1200, "height": 1050})
        page.goto(url.replace("/?", "/notebooks/fld?"))
        bar = page.locator("form.backtest").first
        bar.locator("[name=fld_offset]").fill("17")
        bar.locator("button[data-action=run-as-backtest]").click()
        page.wait_for_selector(".backtest-result .js-plotly-plot .main-svg", timeout=120_000)
        page.wait_for_timeout(500)
        top = bar.bounding_box()["y"] + page.evaluate("window.scrollY") - 420
        page.evaluate(f"window.scrollTo(0, {top})")
        page.screenshot(path=str(DOCS / "meridian-notebooks.png"))
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        out = folder / "outputs"
        spx, ndx = _market_files(folder)
        report = _run(out, "fld", f"data_path={spx}", "--benchmark", str(ndx))
        _run(out, "fld", f"data_path={spx}", "fld_offset=15")
        _run(out, "sma_cross", f"data_path={spx}")
        _run(out, "fld")
        chromium = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            page.goto(report.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg")
            page.wait_for_timeout(500)  # plotly's last relayout
            page.screenshot(path=str(DOCS / "report-head.png"))
            _between(page, "Against the benchmark", "Rolling beta", DOCS / "report-tearsheet.png")
            page.goto((out / "index.html").as_uri())
            page.wait_for_selector("html[data-ready='1']")
            page.screenshot(path=str(DOCS / "dashboard.png"))
            _ui_pages(browser, out)
            browser.close()
    print("wrote", ", ".join(p.name for p in sorted(DOCS.glob("*.png"))))


if __name__ == "__main__":
    main()
