"""The user's project, and every path Meridian reads or writes.

A project is a folder whose ``pyproject.toml`` has a ``[tool.meridian]`` table; Meridian finds
it by walking up from the current directory, as git finds a repository. The project owns the
user's work: strategy notebooks, extracted strategy modules and run outputs. The installed
package only ships read-only things (example notebooks, templates, built-in strategies, sample
data) and is never written to.

Outputs go to ``--output-dir`` if given, else ``$MERIDIAN_HOME``, else the project's
``outputs`` folder. Every folder and file name under an output directory is defined here
(runs, registry, backups, sweeps, comparisons, the dashboard), so an outputs folder can be
moved or deleted as a unit. These helpers only compute paths; creating them is the caller's
job.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from meridian.exceptions import ProjectError, RegistryError

HOME_VARIABLE = "MERIDIAN_HOME"
PYPROJECT = "pyproject.toml"
PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = PACKAGE_DIR / "_examples"
"""Example notebooks shipped in the wheel (``meridian init`` copies them into a project)."""
TEMPLATES_DIR = PACKAGE_DIR / "_templates"
"""Notebook templates shipped in the wheel (``meridian new``)."""
BUILTIN_STRATEGIES_DIR = PACKAGE_DIR / "strategies"
"""Strategy modules generated from the example notebooks."""

SETTINGS = {
    "notebooks": "Jupytext .py strategy notebooks (meridian run NAME)",
    "strategies": "strategy modules written by meridian extract",
    "outputs": "runs, reports, registry and dashboard",
    "templates": "your own notebook templates for meridian new (optional)",
    "universes": "universe files (NAME.toml: markets, one account) for --universe NAME",
    "data": "default OHLCV file when a run names none (optional)",
    "cot": "default CFTC COT file used with `data` (optional)",
}
"""The keys of ``[tool.meridian]``: every one is a path relative to the project folder."""
DEFAULTS = {"notebooks": "notebooks", "strategies": "strategies", "outputs": "outputs",
            "templates": "templates", "universes": "universes"}


@dataclass(frozen=True)
class Project:
    """A project folder and the locations its ``[tool.meridian]`` table names (absolute)."""

    root: Path
    notebooks: Path
    strategies: Path
    outputs: Path
    templates: Path
    universes: Path
    data: Path | None = None
    cot: Path | None = None

    @property
    def is_meridian_source(self) -> bool:
        """True in Meridian's own source checkout, whose strategies folder is the package's
        (built-in strategies are developed there, from the example notebooks)."""
        return PACKAGE_DIR.parent == self.root.resolve()


def _table(pyproject: Path) -> dict | None:
    """The ``[tool.meridian]`` table of a pyproject file, None when it has none."""
    stat = pyproject.stat()
    return _parse(str(pyproject), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _parse(path: str, _mtime: int, _size: int) -> dict | None:
    try:
        with open(path, "rb") as stream:
            document = tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise ProjectError(f"{path} is not valid TOML ({error})") from None
    except OSError as error:
        raise ProjectError(f"cannot read {path}: {error.strerror}") from None
    tool = document.get("tool")
    table = tool.get("meridian") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ProjectError(f"{path}: tool.meridian must be a table ([tool.meridian])")
    return table


def _load(root: Path, table: dict) -> Project:
    where = root / PYPROJECT
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise ProjectError(f"{where}: unknown key {unknown[0]!r} in [tool.meridian]; valid "
                           f"keys: {', '.join(SETTINGS)}")
    located: dict[str, Path | None] = {}
    for key in SETTINGS:
        value = table.get(key, DEFAULTS.get(key))
        if value is None:
            located[key] = None
            continue
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(f"{where}: [tool.meridian] {key} must be a path string, e.g. "
                               f'{key} = "{DEFAULTS.get(key, "data/prices.csv")}", got {value!r}')
        located[key] = Path(os.path.abspath(root / Path(value).expanduser()))
    project = Project(root=root, **located)
    strategies = project.strategies.resolve()
    if strategies.is_relative_to(PACKAGE_DIR) and not project.is_meridian_source:
        raise ProjectError(f"{where}: [tool.meridian] strategies points inside the installed "
                           f"meridian package ({strategies}); use a folder of your project")
    return project


def find_project(start: str | os.PathLike[str] | None = None) -> Project | None:
    """The project containing ``start`` (default: the current directory), or None."""
    here = Path(os.path.abspath(start or Path.cwd()))
    for folder in (here, *here.parents):
        pyproject = folder / PYPROJECT
        if pyproject.is_file():
            table = _table(pyproject)
            if table is not None:
                return _load(folder, table)
    return None


def current_project() -> Project:
    """The project of the current directory; :class:`ProjectError` outside any project."""
    project = find_project()
    if project is None:
        raise ProjectError(f"no Meridian project in {Path.cwd()} or its parents (no "
                           f"{PYPROJECT} with a [tool.meridian] table); run `meridian init` "
                           "to create one")
    return project


# ------------------------------------------------------------------------ outputs


def output_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The output root: ``override``, else ``$MERIDIAN_HOME``, else the project's outputs.

    Relative paths are taken from the current directory at call time; the result is absolute
    and normalized (``..`` removed) but symlinks are not resolved, so it reads as written.
    """
    if override is not None and str(override) != "":
        chosen = Path(override)
    elif os.environ.get(HOME_VARIABLE):
        chosen = Path(os.environ[HOME_VARIABLE])
    else:
        chosen = current_project().outputs
    return Path(os.path.abspath(chosen.expanduser()))


def registry_path(out: Path) -> Path:
    """The SQLite run registry."""
    return Path(out) / "registry.sqlite"


def runs_dir(out: Path) -> Path:
    """The folder holding one sub-folder per run."""
    return Path(out) / "runs"


def run_dir(out: Path, run_id: str) -> Path:
    """The folder of one run. ``run_id`` must be a single plain path component, so that a
    hostile or mistyped id (``../x``, ``a/b``) can never point outside ``runs/``."""
    check_run_id(run_id)
    return runs_dir(out) / run_id


def imports_dir(out: Path) -> Path:
    """Where ``meridian runs import`` keeps the records it imported (the source of truth of
    runs that have no folder of their own)."""
    return Path(out) / "imports"


def backups_dir(out: Path) -> Path:
    """Where registry backups go before destructive operations."""
    return Path(out) / "backups"


def sweeps_dir(out: Path) -> Path:
    """The folder holding one sub-folder per sweep."""
    return Path(out) / "sweeps"


def sweep_dir(out: Path, sweep_id: str) -> Path:
    """The folder of one sweep (its report)."""
    check_run_id(sweep_id)
    return sweeps_dir(out) / sweep_id


def comparisons_dir(out: Path) -> Path:
    """Where ``meridian runs compare`` writes its pages."""
    return Path(out) / "comparisons"


def kernel_log(out: Path, notebook: str) -> Path:
    """Where the warm kernel of ``meridian ui``'s Notebooks page for ``notebook`` writes its
    own output (start-up warnings, crashes), instead of the server's terminal."""
    return Path(out) / "logs" / f"kernel-{notebook}.log"


def dashboard_path(out: Path) -> Path:
    """The static dashboard of an output directory."""
    return Path(out) / "index.html"


def check_run_id(run_id: str) -> str:
    """``run_id`` unchanged if it is usable as a folder name, else :class:`RegistryError`."""
    if (
        not isinstance(run_id, str)
        or run_id.strip() in ("", ".", "..")
        or any(sep in run_id for sep in ("/", "\\", "\0"))
        or run_id != run_id.strip()
    ):
        raise RegistryError(f"invalid run id {run_id!r}: expected a plain name such as a uuid4")
    return run_id


def contained(path: str | os.PathLike[str] | None, folders: list[Path]) -> Path | None:
    """``path`` resolved (links followed) when it lies inside one of ``folders``, else None:
    the paths a run record carries are data from whoever wrote the record, so they are never
    followed outside the outputs or project folders."""
    if not path:
        return None
    resolved = Path(path).expanduser().resolve()
    return resolved if any(resolved.is_relative_to(Path(f).resolve()) for f in folders) \
        else None


def record_path(path: str | os.PathLike[str] | None, folders: list[Path], what: str) -> Path:
    """:func:`contained`, or a one-line :class:`RegistryError` naming ``what`` and where it
    would have to be."""
    found = contained(path, folders)
    if found is None:
        where = " or ".join(str(f) for f in folders)
        raise RegistryError(f"{what} {str(path)!r} is outside {where}; a record's paths are "
                            "never followed outside them (re-run or re-import the run here)")
    return found


# ------------------------------------------------------------------------ sources


def notebook_dirs() -> list[Path]:
    """Where strategy notebooks are looked up, in order: the project's, then the examples."""
    project = find_project()
    return [*([project.notebooks] if project else []), EXAMPLES_DIR]


def universe_dirs() -> list[Path]:
    """Where ``--universe NAME`` is looked up: the project's ``universes/``, then the
    shipped example (``meridian init`` copies it into a project)."""
    project = find_project()
    return [*([project.universes] if project else []), EXAMPLES_DIR / "universes"]


def template_dirs() -> list[Path]:
    """Where ``meridian new`` looks for templates: the project's, then the shipped ones."""
    project = find_project()
    return [*([project.templates] if project else []), TEMPLATES_DIR]


def strategy_dirs() -> list[tuple[str, Path]]:
    """``(origin, folder)`` pairs where strategy modules are found, project first."""
    project = find_project()
    if project and project.strategies.resolve() != BUILTIN_STRATEGIES_DIR:
        return [("project", project.strategies), ("built-in", BUILTIN_STRATEGIES_DIR)]
    return [("built-in", BUILTIN_STRATEGIES_DIR)]


def default_data() -> tuple[Path | None, Path | None]:
    """The project's default OHLCV and COT files (``data`` / ``cot``), None when unset."""
    project = find_project()
    return (project.data, project.cot) if project else (None, None)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the project folder when inside it (stable in generated headers
    whoever runs the command, wherever from), else relative to the current directory."""
    path = Path(os.path.abspath(path))
    project = find_project(path.parent)
    if project and path.is_relative_to(project.root):
        return path.relative_to(project.root).as_posix()
    try:
        return Path(os.path.relpath(path)).as_posix()
    except ValueError:
        return path.as_posix()
