"""`meridian ui` for real: the CLI serves a real output folder, a real Chromium drives it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import Server, meridian, watched_page
from playwright.sync_api import expect

from meridian import storage
from meridian.api import run_backtest


def _api_run(out: Path, **params) -> str:
    result = run_backtest("fld", params)
    storage.save_run(result.to_dict(), out)
    return result.run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two API runs and one notebook run, recorded once for the module (each test serves a
    copy: the registry keeps paths relative to its folder)."""
    out = tmp_path_factory.mktemp("ui") / "outputs"
    ids = [_api_run(out, fld_offset=7), _api_run(out, fld_offset=9)]
    result = meridian("run", "fld", "fld_offset=11", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    ids.append(storage.load_all_runs(out)[0]["run_id"])
    return out, ids


@pytest.fixture
def served(recorded, tmp_path):
    """A fresh copy of the recorded runs, served."""
    template, ids = recorded
    out = tmp_path / "outputs"
    shutil.copytree(template, out, symlinks=True)
    server = Server(out)
    yield server, ids
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def tab(browser, served):
    server, _ = served
    with watched_page(browser, viewport={"width": 1400, "height": 900}) as page:
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(server.url)
        page.wait_for_selector("html[data-ready='1']")
        yield page


def test_the_token_is_enforced_and_changes_need_header_and_origin(served):
    server, ids = served
    for path in ("/", "/api/runs", f"/api/runs/{ids[0]}", "/files/index.html"):
        assert server.request(path, token=None)[0] == 401
        assert server.request(path, token="wrong")[0] == 403
    assert server.request("/api/runs")[0] == 200
    # a change without the header (a cookie alone) or from another origin is refused
    status, answer = server.request("/api/delete", {"ids": [ids[0]]}, origin="http://evil.test")
    assert status == 403 and "origin" in answer["error"]
    status, _ = server.request("/api/delete", {"ids": [ids[0]]}, origin=None)
    assert status == 403
    assert len(storage.load_all_runs(server.out)) == 3  # nothing was deleted
    # only 127.0.0.1 listens (the kernel's table of listening sockets says so)
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 + Path("/proc/net/tcp6").read_text().splitlines()[1:]
                 if line.split()[3] == "0A" and line.split()[1].endswith(f":{server.port:04X}")]
    assert listening == [f"0100007F:{server.port:04X}"]


def test_the_page_lists_runs_with_hooks_and_sorts_in_sqlite(tab, served):
    server, ids = served
    rows = tab.eval_on_selector_all("tr[data-run-id]", "els => els.map(e => e.dataset.runId)")
    assert sorted(rows) == sorted(ids) and rows[0] == ids[2]  # newest first
    assert tab.locator("#count").inner_text() == "3 runs"
    tab.click("th[data-column='m:sharpe_ratio'] button")
    expect(tab.locator("th[data-column='m:sharpe_ratio']")).to_have_attribute(
        "aria-sort", "descending")
    best = max(storage.load_all_runs(server.out), key=lambda r: r["metrics"]["sharpe_ratio"])
    expect(tab.locator("tr[data-run-id]").first).to_have_attribute("data-run-id",
                                                                     best["run_id"])
    tab.fill("#filter-text", "fld_offset=9")
    expect(tab.locator("tr[data-run-id]")).to_have_count(1)
    assert tab.locator("tr[data-run-id]").get_attribute("data-run-id") == ids[1]
    tab.fill("#filter-text", "fld_offset=1")  # exact, as everywhere: 11 does not match
    expect(tab.locator("tr[data-run-id]")).to_have_count(0)
    status, answer = server.request("/api/runs?q=fld_offset%3D11")
    assert status == 200 and answer["matching"] == 1
    status, answer = server.request("/api/runs?q=sharpe_ratio%3E-1000%20fld")
    assert status == 200 and answer["matching"] == 3
    tab.fill("#filter-text", "")
    # each row says which data the run used, and the data column sorts in SQLite too
    expect(tab.locator(f"tr[data-run-id='{ids[2]}'] td.data")).to_have_text(
        "sample 2012-01-02→2024-12-31")
    tab.click("th[data-column='data'] button")
    expect(tab.locator("th[data-column='data']")).to_have_attribute("aria-sort", "ascending")
    # the report opens through the app
    link = tab.locator(f"tr[data-run-id='{ids[2]}'] td.report a")
    assert link.get_attribute("href") == f"files/runs/{ids[2]}/report.html"


def test_a_run_deleted_from_the_page_is_gone_with_a_backup(tab, served):
    server, ids = served
    victim = ids[0]
    tab.click(f"tr[data-run-id='{victim}'] [data-action=delete]")
    expect(tab.locator(f"tr[data-run-id='{victim}']")).to_have_count(0)
    assert victim not in {r["run_id"] for r in storage.load_all_runs(server.out)}
    assert list((server.out / "backups").glob("registry-*.sqlite"))
    assert (server.out / "backups" / "deleted" / victim / "run.json").is_file()
    assert victim not in (server.out / "dashboard" / "rows-00000.js").read_text()


def test_a_tag_added_on_the_page_shows_in_runs_list(tab, served):
    server, ids = served
    tab.click(f"tr[data-run-id='{ids[1]}'] button.run-id")
    form = tab.locator("form[data-action=tags]")
    form.locator("[name=tags]").fill("keeper idea-3")
    form.locator("[name=note]").fill("best so far")
    form.locator("[type=submit]").click()
    expect(tab.locator(f"tr[data-run-id='{ids[1]}'] .tag")).to_have_count(2)
    listed = meridian("runs", "list", "--tag", "keeper", "--output-dir", str(server.out))
    assert listed.returncode == 0 and ids[1][:8] in listed.stdout
    assert ids[0][:8] not in listed.stdout
    assert storage.load_run_by_id(ids[1], server.out)["note"] == "best so far"
    form.locator("[name=tags]").fill("has space,comma")  # a bad tag: said next to the field
    form.locator("[name=tags]").fill("ok bad,tag")
    form.locator("[type=submit]").click()
    expect(form.locator(".field-error[data-error-for=tags]")).to_contain_text("one word")


def test_a_rerun_with_an_edited_parameter_runs_and_appears(tab, served):
    server, ids = served
    notebook_run = ids[2]
    tab.click(f"tr[data-run-id='{notebook_run}']")
    form = tab.locator("form[data-action=rerun]")
    expect(form.locator("[name=fld_offset]")).to_have_value("11")  # the run's own values
    form.locator("[name=fld_offset]").fill("17")
    form.locator("[type=submit]").click()
    expect(form.locator(".form-status")).to_contain_text("queued as run")
    new_id = next(r["run_id"] for r in storage.load_all_runs(server.out)
                  if r["parent_id"] == notebook_run)
    row = tab.locator(f"tr[data-run-id='{new_id}']")
    expect(row).to_have_count(1)  # appears without a reload, queued or running
    expect(row.locator(".badge")).to_have_text("success", timeout=90_000)
    expect(row.locator("td.report a")).to_have_count(1)
    record = storage.load_run_by_id(new_id, server.out)
    assert record["params"]["fld_offset"] == 17 and record["status"] == "success"
    assert record["parent_id"] == notebook_run and record["kind"] == "notebook"


def test_bad_rerun_values_are_refused_next_to_their_field(tab, served):
    server, ids = served
    tab.click(f"tr[data-run-id='{ids[2]}']")
    form = tab.locator("form[data-action=rerun]")
    form.locator("[name=fld_offset]").fill("abc")
    form.locator("[name=cot_threshold]").fill("5")
    form.locator("[type=submit]").click()
    expect(form.locator(".field-error[data-error-for=fld_offset]")).to_contain_text(
        "expects int")
    expect(form.locator(".field-error[data-error-for=cot_threshold]")).to_contain_text("range")
    assert len(storage.load_all_runs(server.out)) == 3  # nothing queued


def test_bad_requests_are_one_line_errors(served):
    server, ids = served
    status, answer = server.request("/api/runs/0000ffff")
    assert status == 404 and answer["error"] == "no run '0000ffff' (deleted?)"
    status, answer = server.request(f"/api/runs/{ids[0]}/rerun", {"params": {"nope": "1"}})
    assert status == 400 and "unknown parameter 'nope'" in answer["error"]
    status, answer = server.request(f"/api/runs/{ids[0]}/rerun", {"params": {"multiplier": "0"}})
    assert status == 400 and "multiplier=0.0 is out of range" in answer["error"]
    status, answer = server.request("/api/runs?sort=m:nonsense")
    assert status == 400 and "unknown metric 'nonsense'" in answer["error"]
    for value in ("nan", "inf", "abc"):  # refused like the CLI does, not matching nothing
        status, answer = server.request(f"/api/runs?metric=sharpe_ratio&op=gt&value={value}")
        assert status == 400 and "is not a finite number" in answer["error"], answer
    status, answer = server.request("/api/delete", {"ids": [ids[0], "0000ffff"]})
    assert status == 404 and "0000ffff" in answer["error"]
    assert len(storage.load_all_runs(server.out)) == 3  # one unknown id deletes nothing
    storage.delete_run(ids[0], server.out)  # deleted elsewhere, then re-run from a stale page
    status, answer = server.request(f"/api/runs/{ids[0]}/rerun", {"params": {}})
    assert status == 404 and "deleted?" in answer["error"]


def test_a_port_in_use_is_one_line_naming_a_free_one(served):
    server, _ = served
    result = meridian("ui", "--port", str(server.port), "--no-browser", "--output-dir",
                      str(server.out))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"meridian: error: port {server.port} on 127\.0\.0\.1 is in use .*"
                        r"try --port \d+, or --port 0 for any free port", line)


def test_runs_recorded_elsewhere_appear_without_a_restart(tab, served):
    server, _ = served
    newcomer = _api_run(server.out, fld_offset=21)  # another process's run, any time
    expect(tab.locator(f"tr[data-run-id='{newcomer}']")).to_have_count(1, timeout=15_000)
    expect(tab.locator("#count")).to_have_text("4 runs")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_marks_queued_reruns_interrupted(served, sig):
    server, ids = served
    queued = []
    for offset in (13, 14, 15):
        status, answer = server.request(f"/api/runs/{ids[0]}/rerun",
                                        {"params": {"fld_offset": str(offset)}})
        assert status == 200, answer
        queued.append(answer["run_id"])
    time.sleep(0.5)  # the first one starts
    stopped = server.stop(sig)
    assert stopped.returncode == 0, stopped.stderr
    assert "queued re-run(s) interrupted" in stopped.stderr
    statuses = {storage.load_run_by_id(i, server.out)["status"] for i in queued[1:]}
    assert statuses == {"interrupted"}
    first = storage.load_run_by_id(queued[0], server.out)["status"]
    assert first in ("interrupted", "success")  # stopped mid-run, or finished in time
    assert not [r for r in storage.load_all_runs(server.out)
                if r["status"] in ("queued", "running")]


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_a_killed_ui_leaves_its_queued_reruns_to_be_marked(served):
    server, ids = served
    for offset in (13, 14):
        server.request(f"/api/runs/{ids[0]}/rerun", {"params": {"fld_offset": str(offset)}})
    server.process.kill()
    server.process.wait()
    time.sleep(0.2)
    from meridian.registry import db

    db._reaped.clear()  # a new process opening the registry looks again
    left = [r for r in storage.load_all_runs(server.out) if r["parent_id"] == ids[0]]
    assert {r["status"] for r in left} <= {"interrupted", "running", "success"}
    assert "queued" not in {r["status"] for r in left}


def _raw(server, path: str, headers: dict | None = None, data: bytes | None = None):
    """A request with exactly ``headers`` (a browser's Sec-Fetch-*, a cookie): status and
    headers, the body read."""
    request = urllib.request.Request(server.base + path, headers=headers or {}, data=data,
                                     method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, {k.lower(): v for k, v in error.headers.items()}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 303 is what the test looks at
        return None


def test_the_cookie_counts_only_for_the_browsers_own_navigation(served):
    server, ids = served
    status, headers = _raw(server, f"/?token={server.token}")
    assert status == 303 and "samesite=lax" in headers["set-cookie"].lower()
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
    # data never answers a cookie alone: another 127.0.0.1 port's page sends it too
    assert _raw(server, "/api/runs", cookie)[0] == 401
    assert _raw(server, "/api/runs", {**cookie, "Sec-Fetch-Site": "same-origin"})[0] == 401
    report = f"/files/runs/{ids[2]}/report.html"
    # a script or fetch from another port's page ("same-site"): refused
    for dest, mode in (("script", "no-cors"), ("empty", "cors"), ("iframe", "navigate")):
        other = {**cookie, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": dest,
                 "Sec-Fetch-Mode": mode}
        assert _raw(server, report, other)[0] == 401, dest
    assert _raw(server, report, cookie)[0] == 401  # no Sec-Fetch-*: not a browser's own
    # the app's own page, and the user's navigation (a link followed) are served
    status, headers = _raw(server, report, {**cookie, "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and headers["content-security-policy"].startswith("sandbox ")
    navigation = {**cookie, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                  "Sec-Fetch-Dest": "document"}
    assert _raw(server, report, navigation)[0] == 200
    # the shared plotly.js is public (a sandboxed report loads it without the cookie)
    asset = next((server.out / "assets").glob("plotly-*.min.js")).name
    assert _raw(server, f"/files/assets/{asset}")[0] == 200
    assert _raw(server, "/files/assets/../registry.sqlite")[0] in (401, 404)
    # the static page's script files are never how the ui serves rows
    status, headers = _raw(server, "/files/index.html", {"X-Meridian-Token": server.token})
    assert status == 303 and headers["location"] == "/"


def test_no_page_can_be_framed_and_nothing_is_sniffed(served):
    server, ids = served
    for path in ("/", "/notebooks", "/api/runs", f"/files/runs/{ids[2]}/report.html"):
        status, headers = _raw(server, path, {"X-Meridian-Token": server.token})
        assert status == 200, path
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cross-origin-resource-policy"] == "same-origin"


def test_huge_bodies_and_fields_are_refused(served):
    server, ids = served
    own = {"X-Meridian-Token": server.token, "Origin": server.base,
           "Content-Type": "application/json"}
    huge = b'{"tags": ["' + b"x" * 5_000_000 + b'"]}'
    assert _raw(server, f"/api/runs/{ids[0]}/tags", own, huge)[0] == 413
    status, answer = server.request(f"/api/runs/{ids[0]}/tags", {"tags": ["x" * 65]})
    assert status == 400 and "at most 64 characters" in answer["error"]
    status, answer = server.request(f"/api/runs/{ids[0]}/tags", {"note": "n" * 10_001})
    assert status == 400 and "at most 10,000" in answer["error"]
    deep = b'{"tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _raw(server, f"/api/runs/{ids[0]}/tags", own, deep)[0] == 400  # not a crash
    assert storage.load_run_by_id(ids[0], server.out)["tags"] == []


def test_portfolio_runs_show_and_filter_by_universe(browser, tmp_path):
    from meridian.api import run_portfolio
    from meridian.dashboard.page import build_dashboard
    from meridian.project import EXAMPLES_DIR

    out = tmp_path / "outputs"
    single = _api_run(out, fld_offset=7)
    universe = EXAMPLES_DIR / "universes" / "example.toml"
    portfolio = run_portfolio("fld", universe, {"fld_offset": 12})
    storage.save_run(portfolio.to_dict(), out)
    server = Server(out)
    try:
        status, answer = server.request("/api/runs?universe=example")
        assert status == 200 and answer["rows"]["id"] == [portfolio.run_id]
        assert server.request("/api/facets")[1]["universes"] == {"example": 1}
        status, answer = server.request("/api/runs?q=example")
        assert answer["rows"]["id"] == [portfolio.run_id]
        with watched_page(browser, viewport={"width": 1400, "height": 900}) as page:
            page.goto(server.url)
            page.wait_for_selector("html[data-ready='1']")
            expect(page.locator("tr[data-run-id]")).to_have_count(2)
            page.select_option("#filter-universe", "example")
            expect(page.locator("tr[data-run-id]")).to_have_count(1)
            row = page.locator(f"tr[data-run-id='{portfolio.run_id}']")
            expect(row).to_contain_text("universe example")
    finally:
        server.stop()
    with watched_page(browser) as page:  # the static dashboard filters the same way
        page.goto(build_dashboard(out).as_uri())
        page.wait_for_selector("html[data-ready='1']")
        page.select_option("#filter-universe", "example")
        expect(page.locator("tr[data-run-id]")).to_have_count(1)
        assert page.locator("tr[data-run-id]").get_attribute("data-run-id") != single
