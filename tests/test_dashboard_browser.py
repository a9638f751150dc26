"""The dashboard in a real headless Chromium: sort, filter, compare, links, escaping, offline.

The page is the one `meridian run` regenerated itself (samples fixture: real notebook runs,
API results, hostile records), not one built for the test.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from playwright.sync_api import expect
from registry_samples import XSS_ERROR, XSS_LINK, XSS_NAME, XSS_PARAM

from meridian import storage

SHARPE = "th[data-column='m:sharpe_ratio'] button"


@pytest.fixture
def page(browser, samples):
    """The samples' index.html in a fresh tab. On teardown: no dialog opened, no script
    error, no Content-Security-Policy violation, no request left the machine."""
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    tab.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                     dialog.dismiss()))
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda message: message.type == "error"
           and problems.append(f"console: {message.text}"))
    tab.on("request", lambda request: request.url.startswith(("http:", "https:"))
           and problems.append(f"network: {request.url}"))
    tab.add_init_script("window.__csp = []; document.addEventListener("
                        "'securitypolicyviolation', e => window.__csp.push(e.violatedDirective))")
    tab.goto((samples.out / "index.html").as_uri())
    tab.wait_for_selector("html[data-ready='1']")
    yield tab
    problems += [f"CSP violation: {v}" for v in tab.evaluate("window.__csp")]
    assert tab.evaluate("window.__xss") is None
    tab.close()
    assert problems == []


def _rows(page) -> list[str]:
    return page.locator("#runs-body tr.run").evaluate_all("rows => rows.map(r => r.dataset.run)")


def _svg_texts(page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("nodes => nodes.map(n => n.textContent)")


def _numbers(texts: list[str]) -> list[float | None]:
    return [None if t == "n/a" else float(t.replace(",", "")) for t in texts]


def test_every_run_is_listed_with_the_count(page, samples):
    assert sorted(_rows(page)) == sorted(samples.ids)
    assert page.locator("#count").inner_text() == f"{len(samples.ids)} runs"
    assert _rows(page)[0] == storage.load_all_runs(samples.out)[0]["run_id"]  # newest first
    assert page.locator("#runs thead th[aria-sort='descending']").get_attribute(
        "data-column") == "time"


def test_clicking_the_sharpe_header_sorts_numerically_with_missing_values_last(page, samples):
    page.click(SHARPE)
    values = _numbers(page.locator("#runs-body td.c-sharpe_ratio").all_inner_texts())
    present = [v for v in values if v is not None]
    assert len(present) >= 20 and values[:len(present)] == present  # n/a only at the end
    assert present == sorted(present, reverse=True)
    assert len({round(v, 2) for v in present}) > 5  # a real spread, not a trivial order
    best = max(storage.load_all_runs(samples.out),
               key=lambda r: r["metrics"].get("sharpe_ratio") or -math.inf)
    assert _rows(page)[0] == best["run_id"]
    assert page.locator("th[data-column='m:sharpe_ratio']").get_attribute("aria-sort") \
        == "descending"

    page.click(SHARPE)
    values = _numbers(page.locator("#runs-body td.c-sharpe_ratio").all_inner_texts())
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[:len(present)] == present
    # "10.5" > "9.2" as numbers, not as text: total return has values of several widths
    page.click("th[data-column='m:total_return'] button")
    returns = _numbers([t.rstrip("%") for t in
                        page.locator("#runs-body td.c-total_return").all_inner_texts()])
    present = [v for v in returns if v is not None]
    assert present == sorted(present, reverse=True)


def test_the_filter_box_hides_rows_that_do_not_match(page, samples):
    runs = storage.load_all_runs(samples.out)
    page.fill("#filter-text", "sma_cross")
    shown = _rows(page)
    assert sorted(shown) == sorted(r["run_id"] for r in runs if r["strategy_name"] == "sma_cross")
    assert all(text.startswith("sma_cross")
               for text in page.locator("#runs-body tr.run td.strategy").all_inner_texts())
    assert page.locator("#count").inner_text() == f"{len(shown)} of {len(runs)} runs match"

    page.fill("#filter-text", "fld_offset=12")
    assert _rows(page) == [samples.api["fld12"]]
    page.fill("#filter-text", "fld_offset=12   FLD")  # words ignore case; every one must hold
    assert _rows(page) == [samples.api["fld12"]]
    page.fill("#filter-text", "fld_offset=1")  # exact: not 10–15
    assert _rows(page) == []
    ranked = sorted((r for r in runs if r["metrics"].get("sharpe_ratio") is not None),
                    key=lambda r: r["metrics"]["sharpe_ratio"], reverse=True)
    between = (ranked[0]["metrics"]["sharpe_ratio"] + ranked[1]["metrics"]["sharpe_ratio"]) / 2
    page.fill("#filter-text", f"sharpe_ratio>{between:.6f}")  # a metric, compared
    assert _rows(page) == [ranked[0]["run_id"]]
    page.fill("#filter-text", "no-such-thing")
    assert _rows(page) == [] and page.locator("#empty").is_visible()
    page.fill("#filter-text", samples.real["fld15"][:8])
    assert _rows(page) == [samples.real["fld15"]]

    page.click("#reset")
    page.select_option("#filter-strategy", "fld")
    page.select_option("#filter-status", "success")
    assert sorted(_rows(page)) == sorted(r["run_id"] for r in runs
                                         if r["strategy_name"] == "fld"
                                         and r["status"] == "success")


def _median(runs: list[dict], metric: str) -> float:
    values = sorted(r["metrics"][metric] for r in runs if r["metrics"].get(metric) is not None)
    return round(values[len(values) // 2], 3)  # a threshold with runs on both sides


def test_a_metric_threshold_keeps_runs_above_it(page, samples):
    runs = storage.load_all_runs(samples.out)
    bound = _median(runs, "sharpe_ratio")  # e.g. Sharpe > 1; here: whatever splits the runs
    page.select_option("#threshold-metric", "sharpe_ratio")
    page.select_option("#threshold-op", "gt")
    page.fill("#threshold-value", str(bound))
    expected = [r["run_id"] for r in runs if (r["metrics"].get("sharpe_ratio") or -math.inf)
                > bound]
    assert 0 < len(expected) < len(samples.ids)
    assert sorted(_rows(page)) == sorted(expected)
    assert all(v >= round(bound, 2) for v in _numbers(
        page.locator("#runs-body td.c-sharpe_ratio").all_inner_texts()))
    page.select_option("#threshold-op", "le")  # and the other way round
    assert sorted(_rows(page)) == sorted(
        r["run_id"] for r in runs if (r["metrics"].get("sharpe_ratio") or math.inf) <= bound)
    # percentages are typed as percentages: max drawdown better than e.g. -20 (%)
    bound = _median(runs, "max_drawdown")
    page.select_option("#threshold-metric", "max_drawdown")
    page.select_option("#threshold-op", "gt")
    assert page.locator("#threshold-unit").inner_text() == "%"
    page.fill("#threshold-value", str(bound * 100))
    expected = [r["run_id"] for r in runs if (r["metrics"].get("max_drawdown") or -math.inf)
                > bound]
    assert len(expected) > 0 and sorted(_rows(page)) == sorted(expected)


def test_failed_runs_are_visible_with_their_error(page, samples):
    page.select_option("#filter-status", "failed")
    failed = [r for r in storage.load_all_runs(samples.out) if r["status"] == "failed"]
    assert sorted(_rows(page)) == sorted(r["run_id"] for r in failed) and len(failed) >= 4
    assert page.locator("#runs-body tr.error-row").first.is_visible()
    errors = page.locator("#runs-body tr.error-row").all_inner_texts()
    assert len(errors) == len(failed)
    assert any("ValueError: need 1 <= fast < slow" in text for text in errors)
    row = page.locator(f"#runs-body tr.run[data-run='{samples.real['failed']}']")
    assert row.locator(".badge").inner_text() == "failed"
    assert row.locator("td.report a").count() == 1  # a failed notebook still has its report


def test_selecting_three_runs_and_comparing_draws_three_equity_traces(page, samples):
    chosen = [samples.api["fld5"], samples.api["fld6"], samples.api["sma3_20"]]
    page.fill("#filter-text", "api")
    for run_id in chosen:
        page.check(f"#runs-body tr.run[data-run='{run_id}'] input[type=checkbox]")
    assert page.locator("#compare").inner_text() == "Compare 3 runs"
    page.click("#compare")
    page.wait_for_selector("#comparison-chart .scatterlayer .trace")
    assert page.locator("#comparison-chart .scatterlayer .trace").count() == 3
    legend = _svg_texts(page, "#comparison-chart .legendtext")
    assert legend == ["fld fld_offset=5", "fld fld_offset=6", "sma_cross"]
    header = page.locator("#comparison-table thead th").all_inner_texts()
    assert [h.split("\n")[0] for h in header[1:]] == [i[:8] for i in chosen]
    assert page.locator("#comparison-table tbody tr").count() >= 19  # status + metrics
    bold = page.locator("#comparison-table td.best").evaluate_all(
        "cells => cells.map(c => c.parentElement.firstElementChild.textContent)")
    assert "Sharpe" in bold and "Trades" not in bold and "Exposure" not in bold
    # the curves start at 1.0 (normalized) and are the registry's curves, downsampled
    first_y = page.evaluate("document.getElementById('comparison-chart').data"
                            ".map(t => t.y[0])")
    assert first_y == [1.0, 1.0, 1.0]

    page.click("#clear-selection")
    assert page.locator("#compare").is_disabled()
    assert page.locator("#runs-body input[type=checkbox]:checked").count() == 0


def test_each_row_shows_its_data_and_a_comparison_warns_when_the_data_differ(page, samples):
    row = page.locator(f"#runs-body tr.run[data-run='{samples.api['fld_recent']}'] td.data")
    assert row.inner_text() == "sample 2018-01-01→2024-12-31"
    full = page.locator(f"#runs-body tr.run[data-run='{samples.api['fld9']}'] td.data")
    assert full.inner_text() == "sample 2012-01-02→2024-12-31"
    for run_id in (samples.api["fld9"], samples.api["fld10"]):  # the same data: no warning
        page.check(f"#runs-body tr.run[data-run='{run_id}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_selector("#comparison-chart .scatterlayer .trace")
    expect(page.locator("#comparison-data")).to_be_hidden()
    page.uncheck(f"#runs-body tr.run[data-run='{samples.api['fld10']}'] input[type=checkbox]")
    page.check(f"#runs-body tr.run[data-run='{samples.api['fld_recent']}'] input[type=checkbox]")
    page.click("#compare")
    warning = page.locator("#comparison-data")
    expect(warning).to_contain_text("the same data over different spans")
    assert samples.api["fld_recent"][:8] in warning.inner_text()
    data_row = page.locator("#comparison-table tbody tr", has_text="2018-01-01").first
    assert data_row.locator("td").first.inner_text() == "data"


def test_a_failed_run_in_a_comparison_is_named_not_drawn(page, samples):
    for run_id in (samples.real["fld"], samples.real["failed"]):
        page.check(f"#runs-body tr.run[data-run='{run_id}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_selector("#comparison-chart .scatterlayer .trace")
    assert page.locator("#comparison-chart .scatterlayer .trace").count() == 1
    assert "No equity curve" in page.locator("#comparison-note").inner_text()


def test_report_links_point_to_existing_reports(page, samples):
    for label, run_id in samples.real.items():
        link = page.locator(f"#runs-body tr.run[data-run='{run_id}'] td.report a")
        href = link.get_attribute("href")
        assert href == f"runs/{run_id}/report.html", label  # relative: the folder can move
        target = Path(unquote(urlparse(link.evaluate("a => a.href")).path))
        assert target.is_file()
        assert target == Path(storage.load_run_by_id(run_id, samples.out)["report_path"])
    api_row = page.locator(f"#runs-body tr.run[data-run='{samples.api['fld5']}']")
    assert api_row.locator("td.report a").count() == 0
    with page.expect_navigation():
        page.click(f"#runs-body tr.run[data-run='{samples.real['fld']}'] td.report a")
    page.wait_for_selector(".plotly-graph-div", timeout=15_000)
    page.go_back()
    page.wait_for_selector("html[data-ready='1']")


def test_injected_markup_shows_as_text_and_runs_nothing(page, samples):
    row = page.locator(f"#runs-body tr.run[data-run='{samples.xss_param}']")
    params = row.locator("td.params")
    assert XSS_PARAM in params.inner_text() and params.is_visible()
    assert XSS_LINK in row.locator("td.strategy").inner_text()
    assert row.locator("script, a:not(td.report a)").count() == 0
    hostile = page.locator(f"#runs-body tr.run[data-run='{samples.xss_error}']")
    assert XSS_NAME in hostile.locator("td.strategy").inner_text()
    assert hostile.locator("b, img").count() == 0
    error_row = page.locator(f"#runs-body tr.error-row:below(#runs-body "
                             f"tr.run[data-run='{samples.xss_error}'])").first
    assert XSS_ERROR in error_row.inner_text()
    assert page.locator("#runs-body img").count() == 0

    # the details panel and the comparison legend show the same strings as text
    hostile.locator("button.run-id").click()
    expect(page.locator("#details-body")).to_contain_text(XSS_ERROR)  # loaded with its chunk
    assert XSS_NAME in page.locator("#details-body").inner_text()
    page.check(f"#runs-body tr.run[data-run='{samples.xss_param}'] input[type=checkbox]")
    page.check(f"#runs-body tr.run[data-run='{samples.api['fld5']}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_selector("#comparison-chart .scatterlayer .trace")
    legend = _svg_texts(page, "#comparison-chart .legendtext")
    assert legend == [f"{XSS_LINK} (fld) fld_offset=7", "fld fld_offset=5"]
    assert page.locator("#comparison-chart a, #comparison-chart script").count() == 0
    page.wait_for_timeout(200)  # give any injected handler a chance to fire


def test_the_details_panel_shows_every_parameter_and_metric(page, samples):
    run = storage.load_run_by_id(samples.real["fld15"], samples.out)
    page.click(f"#runs-body tr.run[data-run='{run['run_id']}'] button.run-id")
    expect(page.locator("#details-body")).to_contain_text("Profit factor")  # chunk loaded
    text = page.locator("#details-body").inner_text()
    assert run["run_id"] in text and "fld_offset" in text and "15" in text
    assert "Sharpe" in text and "Profit factor" in text
    assert page.locator("#details-body a").get_attribute("href") == \
        f"runs/{run['run_id']}/report.html"
    page.click("#close-details")
    assert page.locator("#details").is_hidden()


def _count_at_least(locator, wanted: int, patience: int = 600) -> int:
    """The locator's count once it reaches ``wanted`` (polled, not timed: each look waits on
    the page itself); pytest-timeout ends a page that never gets there."""
    for _ in range(patience):
        count = locator.count()
        if count >= wanted:
            return count
        locator.page.wait_for_timeout(100)
    raise AssertionError(f"{locator.count()} rows, never {wanted}")


def test_large_registries_render_a_page_at_a_time(browser, tmp_path):
    from meridian.dashboard import build_dashboard

    out = tmp_path / "outputs"
    for n in range(450):
        storage.save_run({"run_id": f"{n:08d}-0000-4000-8000-000000000000",
                          "strategy_name": "fld", "status": "success", "kind": "api",
                          "timestamp": f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}",
                          "params": {"fld_offset": n}, "metrics": {"sharpe_ratio": n / 100},
                          "equity": {"index": ["2024-01-01", "2024-01-02"],
                                     "values": [100.0, 100.0 + n]}}, out)
    tab = browser.new_page()
    tab.goto(build_dashboard(out).as_uri())
    tab.wait_for_selector("html[data-ready='1']")
    assert tab.locator("#runs-body tr.run").count() == 200
    assert tab.locator("#count").inner_text() == "450 runs (showing 200)"
    # scrolling to the end of the table loads the next 200 (once: the new rows push the
    # button away); expect() polls with locators, since wait_for_function needs 'unsafe-eval'
    rows = tab.locator("#runs-body tr.run")
    tab.locator("#more").scroll_into_view_if_needed()
    shown = _count_at_least(rows, 400)  # a slow machine may scroll-load the last 50 too
    if shown == 400:
        tab.click("#more")  # and so does the button
    expect(rows).to_have_count(450, timeout=60_000)
    expect(tab.locator("#more")).to_be_hidden()
    tab.click(SHARPE)  # a sort starts again from the top page, best first
    expect(rows).to_have_count(200, timeout=60_000)
    expect(tab.locator("#runs-body td.c-sharpe_ratio").first).to_have_text("4.49")
    tab.fill("#filter-text", "fld_offset=449")
    expect(tab.locator("#count")).to_have_text("1 of 450 runs match", timeout=60_000)
    tab.close()
