"""What a record, a notebook or a request carries never runs, and is never followed outside the
project or the outputs folder: hostile records, notebooks and requests, for real."""

from __future__ import annotations

import json

import pytest
from conftest import meridian

from meridian import project
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
