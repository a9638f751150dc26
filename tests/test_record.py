"""One run, one shape: whichever way a run was made, the registry gives back the same keys with
the same types (a value a run does not have is None, never a missing key)."""

from __future__ import annotations

import subprocess
import sys

from conftest import Server, meridian

from meridian.api import run_backtest
from meridian.storage import load_all_runs, save_run

MAGIC = '''%%backtest fld_offset=14 --name fld-idea
import pandas as pd
from meridian.indicators import cross_state, median_price, shift


def signals(data, fld_offset=10):
    fld = shift(median_price(data["High"], data["Low"]), fld_offset)
    return pd.Series(cross_state(data["Close"], fld), index=data.index)
'''
SIGNALS_CELL = 4  # of the shipped fld notebook


def _shape(record: dict) -> dict[str, str]:
    return {key: type(value).__name__ for key, value in record.items() if value is not None}


def test_every_way_of_running_leaves_the_same_record_shape(project):
    out = project / "outputs"
    save_run(run_backtest("fld", {"fld_offset": 12}).to_dict(), out)  # the API
    assert meridian("run", "fld", "fld_offset=13", cwd=project).returncode == 0
    magic = subprocess.run(  # %%backtest in a real IPython shell
        [sys.executable, "-c", "from IPython.testing.globalipapp import start_ipython\n"
         "shell = start_ipython()\nshell.run_cell('%load_ext meridian')\n"
         f"assert shell.run_cell({MAGIC!r}).success"],
        cwd=project, capture_output=True, text=True, timeout=300)
    assert magic.returncode == 0, magic.stderr
    swept = meridian("sweep", "fld", "--grid", "fld_offset=15,16", "--top", "1", "--reports",
                     cwd=project)  # the best combination re-run as a notebook
    assert swept.returncode == 0, swept.stderr
    server = Server(out, cwd=project)  # a cell run from the ui's Notebooks page
    try:
        status, answer = server.request("/api/notebooks/fld/run", {
            "cell": SIGNALS_CELL, "params": {"fld_offset": "17"}, "settings": {},
            "sources": {}}, timeout=300)  # a cold kernel on a loaded machine
        assert status == 200 and not answer.get("error"), answer
    finally:
        server.stop()

    runs = load_all_runs(out)
    kinds = sorted({run["kind"] for run in runs})
    assert kinds == ["api", "cell", "magic", "notebook"] and len(runs) == 5
    keys = set(runs[0])
    for run in runs:
        assert set(run) == keys, (run["kind"], sorted(set(run) ^ keys))
    types: dict[str, set[str]] = {}
    for run in runs:
        for key, name in _shape(run).items():
            types.setdefault(key, set()).add(name)
    mixed = {key: names for key, names in types.items() if len(names) > 1}
    assert not mixed, mixed
