"""A user's own project after a non-editable install: the wheel, a fresh venv, `meridian init`.

The wheel is built from this checkout and installed (not editable, no dependencies) into a new
virtual environment; the dependencies are borrowed from the test environment through a ``.pth``
file (and a link to their data files), so no download is needed. Every command then runs from
the new project with the new venv's ``meridian``, and nothing under the installed package may
change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT


def _files(package: Path) -> dict[str, str]:
    return {str(p.relative_to(package)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(base / "dist"), str(ROOT)],
                   check=True, capture_output=True, cwd=base)
    (wheel,) = (base / "dist").glob("meridian-*.whl")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    Path(site.stdout.strip(), "borrowed-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    # the data files pip installs beside the dependencies (kernelspec, nbconvert templates)
    (env_dir / "share").mkdir()
    (env_dir / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")
    return env_dir


def _run(venv: Path, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MERIDIAN_HOME"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


SEED_USAGE = """
import json, meridian
from meridian.api import run_backtest
from meridian.storage import save_run, load_all_runs
from meridian.viz import backtest_summary
from meridian.dashboard.components.backtest_viz import backtest_summary as seed_summary
result = run_backtest(strategy_name="FLD", params={'fld_offset': 10, 'cot_threshold': 0.0},
                      initial_capital=100000)
print(result.metrics['sharpe_ratio'])
save_run(result.to_dict())
idea = meridian.run_backtest("idea")
assert idea.status == "success", idea.error
assert seed_summary is backtest_summary
for run in load_all_runs():
    backtest_summary(run)
print(json.dumps({"file": meridian.__file__, "runs": [r["run_id"] for r in load_all_runs()],
                  "fld": result.run_id, "idea_trades": idea.metrics["num_trades"]}))
"""


def test_a_non_editable_install_works_in_a_new_project_and_never_writes_into_itself(
        venv, tmp_path):
    python, meridian = str(venv / "bin" / "python"), str(venv / "bin" / "meridian")
    located = _run(venv, python, "-c", "import meridian, os; print(os.path.dirname("
                   "meridian.__file__))", cwd=tmp_path)
    package = Path(located.stdout.strip())
    assert package.is_relative_to(venv) and not package.is_relative_to(ROOT)
    before = _files(package)
    assert "_examples/fld.py" in before and "_templates/strategy.py" in before

    _run(venv, meridian, "init", "proj", cwd=tmp_path)
    proj = tmp_path / "proj"
    ran = _run(venv, meridian, "run", "fld", "fld_offset=12", cwd=proj)
    assert "report: " + str(proj / "outputs" / "runs") in ran.stdout
    _run(venv, meridian, "new", "idea", "lookback=30", cwd=proj)
    assert (proj / "notebooks" / "idea.py").is_file()
    _run(venv, meridian, "run", "idea", cwd=proj / "notebooks")  # from a sub-folder too
    _run(venv, meridian, "extract", "notebooks/idea.py", cwd=proj)
    assert (proj / "strategies" / "idea.py").read_text().startswith(
        "# Generated from notebooks/idea.py")
    _run(venv, meridian, "extract", "--check", "notebooks/idea.py", cwd=proj)
    listed = _run(venv, meridian, "strategies", cwd=proj)
    assert "idea" in listed.stdout and "project" in listed.stdout

    seed = _run(venv, python, "-c", SEED_USAGE, cwd=proj)
    import json

    facts = json.loads(seed.stdout.strip().splitlines()[-1])
    assert Path(facts["file"]).parent == package
    assert facts["fld"] in facts["runs"] and len(facts["runs"]) == 3  # 2 notebook runs + api
    assert facts["idea_trades"] > 0
    assert _files(package) == before  # nothing under the installed package changed
