"""Every command of the README, run as written: its ```bash and ```python blocks are read from
README.md and executed, in order, against a fresh project (``meridian init``), the ``make``
commands in this repository.

Nothing is retyped here. What a command names that a reader supplies — a run id such as
``3f2a9c``, a file such as ``~/data/CL.csv`` or ``prices.csv``, a scheduler's host — is a
placeholder: :data:`PLACEHOLDERS` lists each with what stands in for it (real runs, real files
written by the fixture, a real local Dask scheduler). What cannot run here is in
:data:`NOT_RUN`, with why. A command the README gains runs at once; an entry here the README
no longer has fails the test, so the lists cannot rot.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
TIMEOUT = 600

NOT_RUN = {
    "make test": "this suite itself",
    "python3 -m venv .venv && .venv/bin/pip install /path/to/meridian":
        "an install from a path (tests/test_makefile.py builds and installs the wheel); the "
        "block runs with this venv standing in for it",
}
"""Commands (as written, comments stripped) that do not run here, and why."""

ANSWERS = {"meridian runs delete ea790900 6e00": ("n\n", 1)}
"""Commands that ask: the answer given and the exit code it gives (the runs are used below)."""

SERVERS = {"meridian ui": "open http://127.0.0.1:8765/",
           "meridian ui --port 0 --no-browser": "open http://127.0.0.1:"}
"""Commands that serve until stopped: what they print once ready (then they are stopped)."""


def blocks() -> list[tuple[int, str, str]]:
    """(first line number, language, text) of each fenced bash or python block."""
    found, language, start, lines = [], None, 0, []
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if line.startswith("```"):
            if language is None:
                language, start, lines = line[3:].strip() or "text", number + 1, []
            else:
                if language in ("bash", "python"):
                    found.append((start, language, "\n".join(lines)))
                language = None
            continue
        if language is not None:
            lines.append(line)
    return found


def commands(text: str) -> list[str]:
    """The shell commands of a bash block: continuations joined, comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append(_command_text(line))
    return found


def _command_text(line: str) -> str:
    """The line without its trailing comment (a # outside quotes, after a space)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    quote, cut = None, len(line)
    for position, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            cut = position
            break
    return line[:cut].strip()


# ------------------------------------------------------------------------ the world it runs in


class World:
    """The fresh project, the stand-ins and the placeholder table."""

    def __init__(self, base: Path):
        self.base = base
        self.home = base / "home"  # ~ in the README's paths
        (self.home / "data").mkdir(parents=True)
        self.elsewhere = base / "elsewhere"  # where `meridian init my-research` is typed
        self.elsewhere.mkdir()
        (self.elsewhere / ".venv").symlink_to(VENV_BIN.parent)
        self.make_outputs = base / "make-outputs"
        done = subprocess.run([str(VENV_BIN / "meridian"), "init", "proj"], cwd=base,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        self.project = base / "proj"
        self.env = {**os.environ, "HOME": str(self.home), "BROWSER": "true",
                    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("MERIDIAN_HOME", None)
        self.env.pop("VIRTUAL_ENV", None)
        self._files()
        self.placeholders: dict[str, str] = {}

    def _files(self) -> None:
        """Real files for the README's example paths: prices (the sample bars), a CFTC zip
        with two markets (one of them CRUDE OIL), a params file, a universe elsewhere."""
        from meridian.data import SAMPLE_COT, SAMPLE_OHLCV

        for target in (self.project / "prices.csv", self.home / "data" / "CL.csv",
                       self.home / "data" / "ES.csv", self.base / "prices.csv"):
            shutil.copyfile(SAMPLE_OHLCV, target)
        text = Path(SAMPLE_COT).read_text()
        head, *rows = text.splitlines()
        crude = [re.sub(r'^"[^"]*"(,[^,]*,[^,]*),999999,SYN,', r'"CRUDE OIL, LIGHT SWEET - NEW '
                        r'YORK MERCANTILE EXCHANGE"\1,067651,CL,', row) for row in rows]
        assert all("067651,CL," in row for row in crude)
        for target in (self.home / "data" / "deacot2024.zip", self.base / "deacot2024.zip"):
            with zipfile.ZipFile(target, "w") as archive:
                archive.writestr("annual.txt", "\n".join([head, *rows, *crude]) + "\n")
        (self.project / "params.yaml").write_text("fld_offset: 20\nallow_short: false\n")
        mine = self.project / "path" / "to"
        mine.mkdir(parents=True)
        shipped = self.project / "universes"
        shutil.copytree(shipped / "data", mine / "data")
        shutil.copyfile(shipped / "example.toml", mine / "mine.toml")

    def seed(self) -> None:
        """Two real runs (the README's ea790900 and 6e003750): a notebook run (fld_offset 10)
        and an API run (15), an executed notebook to convert, and a notebook of the user's
        own."""
        from meridian.api import run_backtest
        from meridian.storage import load_all_runs, save_run

        done = self.shell("meridian run fld", self.project)
        assert done.returncode == 0, done.stderr
        save_run(run_backtest("fld", {"fld_offset": 15}).to_dict(), self.project / "outputs")

        first, second = sorted(load_all_runs(self.project / "outputs"),
                               key=lambda run: run["params"]["fld_offset"])
        shutil.copyfile(first["notebook_path"], self.project / "analysis.ipynb")
        self.shell("meridian new my_idea lookback=20", self.project)
        self.placeholders = {
            "3f2a9c": first["run_id"][:6], "ea790900": first["run_id"][:8],
            "6e003750": second["run_id"][:8], "6e00": second["run_id"][:4],
            "old/backtest_runs.json": "outputs/backtest_runs.json",
            "import backtest_runs.json": "import outputs/backtest_runs.json",
            "prices.csv": str(self.project / "prices.csv"),
            "cot_path=deacot2024.zip": f"cot_path={self.base / 'deacot2024.zip'}",
        }

    def substitute(self, command: str) -> str:
        for placeholder, stand_in in self.placeholders.items():
            command = re.sub(rf"(?<![\w/.~-]){re.escape(placeholder)}(?![\w.-])",
                             stand_in.replace("\\", r"\\"), command)
        return command

    def shell(self, script: str, cwd: Path, answer: str | None = None,
              env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                              capture_output=True, text=True, timeout=TIMEOUT,
                              env=env or self.env, input=answer or "")


def _served(world: World, command: str, ready: str) -> None:
    """Start a command that serves until stopped, wait for its ready line, stop it."""
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=world.project,
                               env=world.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            seen.append(line)
            if line.startswith(ready):
                return
            if not line and process.poll() is not None:
                break
        raise AssertionError(f"{command}: never printed {ready!r}: {''.join(seen)}"
                             f"{process.stderr.read() if process.poll() is not None else ''}")
    finally:
        process.terminate()
        process.wait(timeout=60)


# ------------------------------------------------------------------------ python blocks

PRELUDE = {
    "": "import pandas as pd\nfrom meridian import run_backtest\nfrom meridian.data import "
        "load_sample\nfrom meridian.strategies.fld import fld_line as _fld_line, signals\n"
        "from meridian.storage import load_all_runs\ndata = load_sample()\n"
        "fld_offset, cot_threshold, allow_short = 10, 0.0, True\n",
    "result": 'result = result_a = run_backtest("fld", {"fld_offset": 10})\n',
    "record_b": "record_b, record_c = load_all_runs()[:2]\n",
    "benchmark": 'benchmark = data["Close"] / data["Close"].iloc[0] * 100_000\n',
    "position": "position = signals(data)\n",
    "fld_line": "fld_line = _fld_line(data, 10)\n",
    "returns_matrix": 'returns_matrix = pd.concat([run_backtest("fld", {"fld_offset": n}).returns'
                      " for n in (8, 10, 12, 14)], axis=1).to_numpy()\n",
}
"""The names a python block uses that a notebook or an earlier cell would hold (each defined
only for a block that names it): a result, the data, a position, a record, a matrix of
returns. ``fld_line`` is the FLD line itself (a price level, as the engine block passes it)."""

NOTEBOOK_NAMES = {"fld_line(data, fld_offset)": "_fld_line(data, fld_offset)"}
"""The notebook block calls ``fld_line`` (the function); the engine block passes the line."""


def _python(world: World, text: str) -> subprocess.CompletedProcess:
    if text.lstrip().startswith("%"):  # IPython: %load_ext, %%backtest
        return _ipython(world, text)
    for name, stand_in in NOTEBOOK_NAMES.items():
        text = text.replace(name, stand_in)
    prelude = "".join(code for name, code in PRELUDE.items()
                      if not name or re.search(rf"\b{name}\b", text))
    script = prelude + "\n" + world.substitute(text)
    return subprocess.run([sys.executable, "-c", script], cwd=world.project,
                          capture_output=True, text=True, timeout=TIMEOUT, env=world.env)


def _ipython(world: World, text: str) -> subprocess.CompletedProcess:
    """A cell of the README run in a real IPython shell, after ``%load_ext meridian``."""
    script = (
        "from IPython.testing.globalipapp import start_ipython\n"
        "shell = start_ipython()\n"
        "for cell in ['%load_ext meridian', " + repr(text) + "]:\n"
        "    outcome = shell.run_cell(cell)\n"
        "    if not outcome.success: raise SystemExit(f'cell failed: {outcome.error_in_exec}')\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=world.project,
                          capture_output=True, text=True, timeout=TIMEOUT, env=world.env)


# ------------------------------------------------------------------------ the test


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("readme"))
    world.seed()
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        world.placeholders["tcp://host:8786"] = cluster.scheduler_address
        yield world


def _fails(what: str, done: subprocess.CompletedProcess) -> str:
    return (f"README line {what}: exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
            f"\n--- stderr\n{done.stderr[-3000:]}")


def _jobs(world: World) -> tuple[list, list, set[str]]:
    """The README's commands as (where, what to run) checks, in two lanes that share nothing:
    this repository's ``make`` commands and the block typed outside any project, and the
    project's own commands (in README order: later ones use what earlier ones made)."""
    apart, project, seen = [], [], set()
    for start, language, text in blocks():
        if language == "python":
            project.append((f"{start} (python)", lambda text=text: (_python(world, text), 0)))
            continue
        lines = commands(text)
        seen.update(lines)
        if any(line.startswith("cd ") for line in lines):  # a block that moves: one script
            script = "\n".join(f"# not run: {line}" if line in NOT_RUN else line
                               for line in lines)
            env = {**world.env, "PATH": world.env["PATH"].replace(
                f"{VENV_BIN}{os.pathsep}", "", 1)}  # only the README's own activation
            apart.append((f"{start} (block)", lambda script=script, env=env: (
                world.shell(world.substitute(script), world.elsewhere, env=env), 0)))
            continue
        for line in lines:
            command = world.substitute(line)
            if line in NOT_RUN:
                continue
            if line in SERVERS:
                project.append((line, lambda command=command, line=line: (
                    _served(world, command, SERVERS[line]), None)))
            elif line.startswith("make "):
                env = {**world.env, "MERIDIAN_HOME": str(world.make_outputs)}
                apart.append((f"{start}: {line}", lambda command=command, env=env: (
                    world.shell(command, ROOT, env=env), 0)))
            else:
                answer, code = ANSWERS.get(line, (None, 0))
                project.append((f"{start}: {line}", lambda c=command, a=answer, k=code: (
                    world.shell(c, world.project, a), k)))
    return apart, project, seen


def _check(jobs: list) -> None:
    for what, job in jobs:
        done, code = job()
        if code is not None:
            assert done.returncode == code, _fails(what, done)


@pytest.mark.timeout(1800)  # 76 commands: about 2 minutes quiet, several on a loaded machine
def test_every_readme_command_runs_as_written(world):
    apart, project, seen = _jobs(world)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the two lanes side by side
        other_lane = pool.submit(_check, apart)
        _check(project)
        other_lane.result()
    stale = [line for line in [*NOT_RUN, *ANSWERS, *SERVERS] if line not in seen]
    assert not stale, f"no longer in the README: {stale}"


def test_the_readme_blocks_are_read_whole():
    found = blocks()
    assert sum(language == "bash" for _, language, _ in found) >= 15
    assert sum(language == "python" for _, language, _ in found) >= 8
    assert commands("meridian run fld \\\n    --no-input   # a comment\n# only a comment\n") \
        == ["meridian run fld --no-input"]
    assert commands('make run PARAMS="a=1 # not a comment" # one\n') \
        == ['make run PARAMS="a=1 # not a comment"']
