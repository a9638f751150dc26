"""Where Meridian writes: one output directory holds runs, registry, dashboard and backups.

Keeping everything under a single root means an outputs folder can be moved, copied or
deleted as a unit, and ``MERIDIAN_HOME`` redirects every writer at once (tests, CI, notebooks).
These helpers only compute paths; creating directories is the caller's job.
"""

from __future__ import annotations

import os
from pathlib import Path

from meridian.exceptions import RegistryError

ENV_VAR = "MERIDIAN_HOME"
DEFAULT_DIRNAME = "outputs"


def output_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The output root: ``override``, else ``$MERIDIAN_HOME``, else ``./outputs``; absolute.

    Relative paths are taken from the current working directory at call time. The result is
    normalized (``..`` removed) but symlinks are not resolved, so it reads as the user wrote it.
    """
    if override is not None and str(override) != "":
        chosen = Path(override)
    elif os.environ.get(ENV_VAR):
        chosen = Path(os.environ[ENV_VAR])
    else:
        chosen = Path(DEFAULT_DIRNAME)
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


def backups_dir(out: Path) -> Path:
    """Where registry backups go before destructive operations."""
    return Path(out) / "backups"


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
