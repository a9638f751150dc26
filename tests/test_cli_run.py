"""``meridian run`` end to end: real notebooks on a real kernel, a real SQLite registry."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, meridian
from registry_samples import unruled_notebook

from meridian.storage import load_all_runs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Default FLD and FLD with fld_offset=15 in one output directory."""
    out = tmp_path_factory.mktemp("runs") / "outputs"
    first = meridian("run", "fld", "--output-dir", str(out))
    second = meridian("run", "fld", "-p", "fld_offset", "15", "--output-dir", str(out))
    return out, first, second


def test_run_prints_metrics_and_report_path(two_runs):
    out, first, _ = two_runs
    assert first.returncode == 0, first.stderr
    assert "sharpe_ratio" in first.stdout and "max_drawdown" in first.stdout
    report = Path(first.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and report.parent.parent == out / "runs"
    assert (report.parent / "fld.ipynb").is_file()


def test_each_run_is_a_registry_row_with_its_parameters(two_runs):
    out, first, second = two_runs
    assert second.returncode == 0, second.stderr
    runs = load_all_runs(out)
    assert len(runs) == 2 and all(r["status"] == "success" for r in runs)
    newest, oldest = runs
    assert newest["params"]["fld_offset"] == 15 and oldest["params"]["fld_offset"] == 10
    assert newest["metrics"]["sharpe_ratio"] != oldest["metrics"]["sharpe_ratio"]
    assert newest["trades_count"] == newest["metrics"]["num_trades"]
    assert 2 <= len(newest["equity"]["values"]) <= 500
    assert len(newest["code"]["notebook_sha256"]) == 64 and newest["duration"] > 0
    assert sqlite3.connect(out / "registry.sqlite").execute("PRAGMA journal_mode").fetchone() \
        == ("wal",)


def test_report_is_live_in_a_real_browser_offline(two_runs, browser):
    out, first, _ = two_runs
    report = first.stdout.strip().splitlines()[-1].removeprefix("report: ")
    page = browser.new_page()
    external: list[str] = []
    page.on("request", lambda r: r.url.startswith(("http:", "https:")) and external.append(r.url))
    page.goto(Path(report).as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=15_000)
    charts = page.locator(".plotly-graph-div")
    assert charts.count() >= 3  # equity+drawdown, price with FLD, monthly heatmap
    for i in range(charts.count()):
        assert charts.nth(i).locator("svg.main-svg").count() >= 1
    assert page.locator(".plotly-graph-div .scatterlayer .trace").count() >= 3
    assert external == []
    page.close()


def test_rebuild_restores_every_run_from_the_notebooks(two_runs):
    out, *_ = two_runs
    before = {r["run_id"]: r["metrics"] for r in load_all_runs(out)}
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out / 'registry.sqlite'}{suffix}").unlink(missing_ok=True)
    result = meridian("runs", "rebuild", "--output-dir", str(out))
    assert result.returncode == 0 and "restored 2 runs" in result.stdout
    assert {r["run_id"]: r["metrics"] for r in load_all_runs(out)} == before


def test_export_writes_the_runs_as_json(two_runs):
    out, *_ = two_runs
    result = meridian("runs", "export", "--format", "json", "--output-dir", str(out))
    assert result.returncode == 0
    import json
    runs = json.loads(Path(result.stdout.strip()).read_text())
    assert {r["strategy_name"] for r in runs} == {"fld"} and len(runs) == 2


def test_params_file_and_no_input(outputs, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("fast: 5\nslow: 30\n")
    result = meridian("run", "sma_cross", "-f", str(params), "-p", "slow", "40", "--no-input",
                      "--output-dir", str(outputs))
    assert result.returncode == 0, result.stderr
    (run,) = load_all_runs(outputs)
    assert run["params"]["fast"] == 5 and run["params"]["slow"] == 40  # -p wins over the file
    assert "strategy_params = " not in Path(run["report_path"]).read_text()


def test_a_strategy_rule_is_checked_before_any_kernel(outputs):
    result = meridian("run", "sma_cross", "fast=50", "slow=10", "--output-dir", str(outputs))
    assert result.returncode == 2
    assert result.stderr.strip() == ("meridian: error: fast=50, slow=10 breaks the rule fast < "
                                     "slow of sma_cross: the fast average must be shorter than "
                                     "the slow one")
    assert load_all_runs(outputs) == []


def test_a_notebook_that_raises_is_recorded_as_failed(outputs, tmp_path):
    notebook = unruled_notebook(tmp_path / "mine")  # no PARAM_RULES: the kernel finds out
    result = meridian("run", str(notebook), "-p", "fast", "30", "-p", "slow", "20",
                      "--output-dir", str(outputs))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "failed: ValueError: need 1 <= fast < slow" in lines[0]
    (run,) = load_all_runs(outputs)
    assert run["status"] == "failed" and run["error"].startswith("ValueError")
    assert "Traceback" in run["traceback"] or "ValueError" in run["traceback"]
    report = Path(run["report_path"])
    assert report.is_file() and str(report) in lines[0]
    assert "An Exception was encountered" in report.read_text()  # papermill's banner
    assert Path(run["notebook_path"]).is_file()


def _bad_data(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text("Date,Open,High,Low,Close\n2020-01-01,10,11,9,10\n2020-01-02,10,9,11,10\n")
    return path


def _bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("fld_offset: [15\n")
    return path


def _yaml_bomb(tmp_path: Path) -> Path:
    path = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
    path.write_text("\n".join(lines) + "\n")  # 9**9 strings if aliases were expanded
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda t: ["run", "fdl"], "unknown strategy 'fdl'; notebooks in"),
        (lambda t: ["run", "fld", "-p", "offset", "3"],
         "unknown parameter 'offset' for fld; valid parameters: fld_offset, cot_threshold"),
        (lambda t: ["run", "fld", "-p", "fld_offset", "abc"],
         "parameter 'fld_offset' of fld expects int"),
        (lambda t: ["run", "fld", "-p", "data_path", str(t / "missing.csv")],
         "data_path: no such file"),
        (lambda t: ["run", "fld", "-p", "data_path", str(_bad_data(t))],
         "prices.csv line 3 (2020-01-02): High"),
        (lambda t: ["run", "fld", "-f", str(_bad_yaml(t))], "params.yaml line 2: not valid YAML"),
        (lambda t: ["run", "fld", "-f", str(_yaml_bomb(t))],
         "aliases (*name) are not allowed in a parameters file"),
        (lambda t: ["run", "fld", "fld_offset=1000000000"],
         "fld_offset=1,000,000,000 is too long for the data: 3,392 bars leave room for a "
         "window of at most 3,372"),
        (lambda t: ["run", "sma_cross", "slow=100000"], "slow=100,000 is too long for the data"),
        (lambda t: ["run", "fld", "initial_capital=1e308"],
         "initial_capital=1e+308 is out of range"),
        (lambda t: ["run", "a" * 5000], "unknown strategy"),
        (lambda t: ["run", "fld", f"data_path={'a' * 5000}.csv"],
         "data_path: 'aaaa"),
        (lambda t: ["run", "fld", "start=2030-01-01"],
         "no bars between start='2030-01-01' and end=None; the data runs from 2012-01-02"),
    ],
    ids=["unknown-strategy", "unknown-parameter", "ill-typed", "missing-data", "malformed-data",
         "malformed-yaml", "yaml-bomb", "window-longer-than-data", "slow-100000",
         "capital-1e308", "long-notebook-name", "long-data-path",
         "window-without-bars"],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, outputs, tmp_path):
    result = meridian(*args(tmp_path), "--output-dir", str(outputs))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meridian: error: ") and message in lines[0]
    assert not (outputs / "runs").exists()


def test_init_where_nothing_can_be_written_is_one_line(tmp_path):
    result = meridian("init", "/proc/x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "meridian: error: No such file or directory: /proc/x"]


def test_eight_runs_started_at_once_are_eight_rows(outputs):
    command = [sys.executable, "-m", "meridian.cli", "run", "fld", "--output-dir", str(outputs)]
    processes = [
        subprocess.Popen([*command, "-p", "fld_offset", str(5 + i)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    assert all(code == 0 for code, _ in results), results
    runs = load_all_runs(outputs)
    assert len(runs) == 8
    assert sorted(r["params"]["fld_offset"] for r in runs) == list(range(5, 13))


def test_a_run_killed_mid_execution_leaves_a_working_registry(outputs):
    assert meridian("run", "sma_cross", "--output-dir", str(outputs)).returncode == 0
    victim = subprocess.Popen(
        [sys.executable, "-m", "meridian.cli", "run", "fld", "--output-dir", str(outputs)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    runs_before = set((outputs / "runs").iterdir())
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            (folder / "kernel.log").exists()
            for folder in set((outputs / "runs").iterdir()) - runs_before):
        time.sleep(0.02)  # the kernel is launched right after the inputs are validated
    time.sleep(0.3)  # it is booting or executing now: a kernel alone takes longer to start
    assert victim.poll() is None, "the run finished before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    connection = sqlite3.connect(outputs / "registry.sqlite")
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    killed, survivor = load_all_runs(outputs)
    assert survivor["strategy_name"] == "sma_cross" and survivor["status"] == "success"
    assert killed["strategy_name"] == "fld" and killed["status"] == "interrupted"
    assert f"pid {victim.pid}" in killed["error"] and killed["params"]["fld_offset"] == 10
    listed = meridian("runs", "list", "--status", "interrupted", "--output-dir", str(outputs))
    assert killed["run_id"][:8] in listed.stdout
    assert meridian("run", "sma_cross", "-p", "fast", "5", "--output-dir", str(outputs)) \
        .returncode == 0
    assert len(load_all_runs(outputs)) == 3
    orphans = list(Path(tempfile.gettempdir()).glob(f"meridian-kernel-{victim.pid}-*"))
    assert orphans == []  # the next run removed the killed run's socket folder
    deleted = meridian("runs", "delete", killed["run_id"][:8], "-y", "--output-dir",
                       str(outputs))
    assert deleted.returncode == 0 and len(load_all_runs(outputs)) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (lambda t: ["--data", str(_one_bar(t))], "one.csv has 1 bar; a backtest needs at least 20"),
        (lambda t: ["--capital", "inf"], "initial_capital=inf is out of range"),
        (lambda t: ["--set", "initial_capital=1e308"], "initial_capital=1e+308 is out of range"),
    ],
    ids=["one-bar", "capital-inf", "capital-1e308"],
)
def test_backtest_and_sweep_refuse_the_same_things(extra, message, tmp_path, outputs):
    for command in (["backtest", "fld"], ["sweep", "fld", "--grid", "fld_offset=5,6"]):
        result = meridian(*command, *extra(tmp_path), env={"MERIDIAN_HOME": str(outputs)})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], \
            (command, lines)
    assert load_all_runs(outputs) == [] and not (outputs / "sweeps").exists()


def _one_bar(tmp_path: Path) -> Path:
    path = tmp_path / "one.csv"
    path.write_text("Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1\n")
    return path


def test_params_lists_every_parameter_of_the_notebook_with_its_range_and_help(project):
    import jupytext

    from meridian.pipeline.notebooks import notebook_parameters

    shown = meridian("params", "sma_cross", cwd=project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    own = notebook_parameters(jupytext.read(project / "notebooks" / "sma_cross.py"))
    for name, parameter in own.items():  # every name of the cell, with its comment
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        assert parameter.help and line.endswith(parameter.help)
    fast = next(line for line in lines if line.startswith("fast "))
    assert fast.split()[:4] == ["fast", "int", "10", "[1,"]
    assert "rule: fast < slow (the fast average must be shorter than the slow one)" in lines
    sizing = next(line for line in lines if line.startswith("sizing "))
    assert "fixed_fraction|volatility_target" in sizing  # a setting the cell does not declare
    unknown = meridian("params", "nope", cwd=project)
    assert unknown.returncode == 2 and "unknown strategy 'nope'" in unknown.stderr
    helped = meridian("run", "--help", cwd=project)
    assert "meridian params STRATEGY" in " ".join(helped.stdout.split())


def test_on_a_terminal_a_run_says_what_it_is_doing_and_elsewhere_nothing(outputs):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    process = subprocess.Popen([sys.executable, "-m", "meridian.cli", "run", "fld",
                                "--output-dir", str(outputs)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=follower, text=True)
    os.close(follower)
    said = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        said += chunk
    stdout, _ = process.communicate(timeout=300)
    os.close(leader)
    assert process.returncode == 0
    text = said.decode(errors="replace")
    assert "fld: starting a kernel (run " in text and "fld: cells" in text
    assert "fld: writing the report" in text and "report: " in stdout
    quiet = meridian("run", "fld", "--output-dir", str(outputs))  # stderr is a pipe
    assert quiet.returncode == 0 and quiet.stderr == ""
