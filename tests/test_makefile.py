"""The Makefile hands PARAMS and NAME to meridian as data: spaces survive, nothing is executed."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT


def _make(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "MERIDIAN_HOME": str(home)}
    # -o: never rebuild the venv from here (the suite already runs inside it)
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_values_with_spaces_reach_meridian_whole(tmp_path):
    missing = tmp_path / "dir with space" / "prices.csv"
    result = _make("run", f'PARAMS=fld_offset=15 data_path="{missing}"', home=tmp_path / "out")
    assert result.returncode == 2
    assert f"data_path: no such file '{missing}'" in result.stderr


def test_semicolons_and_backticks_are_never_run(tmp_path):
    marker = tmp_path / "pwned"
    for params in (f"fld_offset=15; touch {marker}", f"fld_offset=`touch {marker}`",
                   f"fld_offset=$$(touch {marker})"):
        result = _make("run", f"PARAMS={params}", home=tmp_path / "out")
        assert result.returncode == 2, result.stderr
        assert not marker.exists(), params
    result = _make("new", f"NAME=x; touch {marker}", home=tmp_path / "out")
    assert result.returncode == 2 and "is not a valid strategy name" in result.stderr
    assert not marker.exists()
