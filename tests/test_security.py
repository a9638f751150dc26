"""What a record, a notebook or a request carries never runs, and is never followed outside the
project or the outputs folder: hostile records, notebooks and requests, for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import meridian

from meridian import project, storage
from meridian.exceptions import RegistryError
from meridian.pipeline.rerun import rerun_target
from meridian.registry.transfer import import_runs
from meridian.storage import load_run_by_id


def _import(outputs, tmp_path, **fields) -> str:
    record = {"run_id": "evil0001", "strategy_name": "fld", "status": "success",
              "timestamp": "2024-01-01T00:00:00", "kind": "notebook",
              "params": {"fld_offset": 10}, "metrics": {"sharpe_ratio": 1.0}, **fields}
    source = tmp_path / "evil.json"
    source.write_text(json.dumps([record]))
    import_runs(source, outputs)
    return record["run_id"]


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd"])
def test_report_never_prints_or_reads_a_report_path_outside_the_outputs(outputs, tmp_path,
                                                                         path):
    run_id = _import(outputs, tmp_path, report_path=path)
    for args in ([], ["--standalone"]):
        shown = meridian("report", run_id, *args, "--output-dir", str(outputs))
        assert shown.returncode == 2 and "passwd" not in shown.stdout
        lines = shown.stderr.strip().splitlines()
        assert len(lines) == 1 and "is outside" in lines[0], lines
    assert not (tmp_path / "report-standalone.html").exists()


def test_rerun_never_runs_a_notebook_outside_the_project(outputs, tmp_path):
    evil = tmp_path / "evil.py"
    evil.write_text("# %%\nopen('pwned', 'w').write('x')\n")
    run_id = _import(outputs, tmp_path, code={"notebook": str(evil)})
    with pytest.raises(RegistryError, match="notebook .* is outside"):
        rerun_target(load_run_by_id(run_id, outputs))
    again = meridian("rerun", run_id, "--output-dir", str(outputs), cwd=tmp_path)
    assert again.returncode == 2 and "is outside" in again.stderr
    assert not (tmp_path / "pwned").exists()


def test_rerun_takes_a_strategy_name_never_a_path(outputs, tmp_path):
    evil = tmp_path / "evil.py"
    evil.write_text("# %%\nopen('pwned', 'w').write('x')\n")
    run_id = _import(outputs, tmp_path, strategy_name=str(evil))
    with pytest.raises(RegistryError, match="is not a notebook name"):
        rerun_target(load_run_by_id(run_id, outputs))


def test_contained_follows_links_and_dot_dots(tmp_path):
    inside = tmp_path / "out"
    inside.mkdir()
    (inside / "link").symlink_to("/etc")
    assert project.contained(inside / "a.html", [inside]) == (inside / "a.html").resolve()
    assert project.contained(inside / "link" / "passwd", [inside]) is None
    assert project.contained(inside / ".." / "x", [inside]) is None
    assert project.contained("", [inside]) is None


HOSTILE_MARKDOWN = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    '<svg onload="window.__pwned = 3"></svg><iframe src="javascript:parent.__pwned = 4">'
    '</iframe><a id="js-link" href="javascript:window.__pwned = 5">a link</a>'
    '<math><mtext><style><img src=x onerror="window.__pwned = 6"></style></mtext></math>'
    "<details open ontoggle=\"window.__pwned = 7\">x</details>")
HOSTILE_CODE = (
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML('<script>window.__pwned = 8</script><img src=x onerror=\"window.__pwned"
    " = 9\"><b>bold output</b>'))\n"
    "display(Javascript('window.__pwned = 10'))\n")
HOSTILE_LABEL = '<img src=x onerror="window.__pwned = 11">'


@pytest.fixture
def hostile_run(project):
    """`meridian run` of a copy of fld with hostile markdown, outputs, a parameter value."""
    text = (project / "notebooks" / "fld.py").read_text()
    text = text.replace('\nfld_offset = 10 ', f'\nlabel = {json.dumps(HOSTILE_LABEL)}\n'
                        'fld_offset = 10 ', 1)
    lines = "\n".join(f"# {line}" for line in HOSTILE_MARKDOWN.split("\n"))
    text += f"\n# %% [markdown]\n{lines}\n\n# %%\n{HOSTILE_CODE}"
    (project / "notebooks" / "hostile.py").write_text(text)
    ran = meridian("run", "hostile", cwd=project)
    assert ran.returncode == 0, ran.stderr
    out = project / "outputs"
    (record,) = [r for r in storage.load_all_runs(out) if r["strategy_name"] == "hostile"]
    storage.tag_run(record["run_id"], ["<script>window.__pwned=12</script>"],
                    '<img src=x onerror="window.__pwned = 13">', out)
    return out, record


def _pwned(page) -> list:
    page.wait_for_timeout(500)
    return page.evaluate("window.__pwned === undefined ? [] : [window.__pwned]")


def test_a_hostile_notebooks_report_runs_nothing_and_reaches_nothing(hostile_run, browser):
    out, record = hostile_run
    report = Path(record["report_path"])
    page = browser.new_page()
    left = []
    page.on("request", lambda request: left.append(request.url)
            if not request.url.startswith(("file:", "data:", "blob:", "about:")) else None)
    page.goto(report.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    assert page.locator(".plotly-graph-div .main-svg").count() >= 2  # Meridian's charts draw
    page.click("#meridian-code-toggle")  # the report's own script works
    page.click("#js-link", no_wait_after=True) if page.locator("#js-link").count() else None
    assert _pwned(page) == [] and left == []
    text = page.inner_text("body")
    assert "<script>window.__pwned = 1</script>" in text  # shown as text, inert
    assert "bold output" in text
    page.close()
    source = report.read_text()
    assert "<script>window.__pwned" not in source  # the markup is escaped, never raw
    assert "application/javascript" not in source  # JavaScript outputs are dropped


def test_the_ui_shows_hostile_names_tags_and_reports_inertly(hostile_run, browser):
    from conftest import Server

    out, record = hostile_run
    server = Server(out)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        left = []
        page.on("request", lambda request: left.append(request.url)
                if not request.url.startswith((server.base, "data:", "blob:", "about:"))
                else None)
        page.goto(server.url)
        page.wait_for_selector("html[data-ready='1']")
        page.click(f"tr[data-run-id='{record['run_id']}']")
        page.wait_for_timeout(1000)
        assert _pwned(page) == []
        assert "window.__pwned=12" in page.inner_text("body")  # the tag, as text
        page.goto(f"{server.base}/files/runs/{record['run_id']}/report.html")
        page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
        assert page.evaluate("window.origin") == "null"  # sandboxed: not the app's origin
        assert _pwned(page) == [] and left == []
        page.close()
    finally:
        server.stop()


def test_runs_show_marks_a_path_outside_the_outputs_as_never_opened(outputs, tmp_path):
    run_id = _import(outputs, tmp_path, report_path="/etc/passwd")
    shown = meridian("runs", "show", run_id, "--output-dir", str(outputs))
    assert shown.returncode == 0
    assert "/etc/passwd (outside the outputs folder: never opened)" in shown.stdout
