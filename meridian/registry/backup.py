"""Copies kept before anything destructive: registry snapshots, deleted runs, damaged files.

``backups/registry-<UTC time>.sqlite`` are consistent snapshots (SQLite's online backup API,
safe while other processes write); the newest five are kept. A deleted run's folder (notebook,
report, record file) moves to ``backups/deleted/<run_id>/`` with the snapshot taken just before
the delete, so a restored run is whole: move the folder back to ``runs/`` and run
``meridian runs rebuild``. A damaged registry file is moved aside, never deleted.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from meridian import project
from meridian._files import file_mode
from meridian.exceptions import RegistryError
from meridian.registry.db import Registry

PathLike = str | os.PathLike[str]
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup_registry(output_dir: PathLike | None = None, keep: int = 5) -> Path | None:
    """Copy the registry into ``backups/registry-<UTC time>.sqlite``; keep the newest ``keep``.

    Uses SQLite's online backup API, which copies a consistent snapshot even while other
    processes write (a plain file copy could catch a half-checkpointed WAL). Returns ``None``
    when there is no registry yet.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise RegistryError(f"keep must be a positive integer, got {keep!r}")
    registry = Registry(output_dir)
    if not registry.exists:
        return None
    folder = project.backups_dir(registry.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = _fresh_backup_name(folder)
    temp = target.with_name(target.name + ".tmp")
    with registry.connect() as source:
        dest = sqlite3.connect(temp)
        try:
            source.backup(dest)
            dest.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        finally:
            dest.close()
    os.chmod(temp, file_mode())
    os.replace(temp, target)
    _prune_backups(folder, keep)
    return target


def _fresh_backup_name(folder: Path) -> Path:
    """A backup path no other process has claimed (names are unique to the microsecond)."""
    while True:
        target = folder / f"registry-{_stamp()}.sqlite"
        try:
            fd = os.open(target.with_name(target.name + ".tmp"), os.O_CREAT | os.O_EXCL,
                         file_mode())
        except FileExistsError:
            time.sleep(0.000_01)
            continue
        os.close(fd)
        return target


def _prune_backups(folder: Path, keep: int) -> None:
    backups = sorted(folder.glob("registry-*.sqlite"))  # fixed-width names sort by time
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)


def keep_deleted_run(out: Path, run_id: str, record: dict | None = None) -> Path | None:
    """Move a run's folder to ``backups/deleted/<run_id>/`` (a symlinked folder is only
    unlinked, and nothing outside ``runs/`` is ever touched); a run without a folder (an
    imported one) leaves its ``record`` there as ``run.json``, which also tells ``runs
    rebuild`` not to bring it back. Returns where it went."""
    try:
        folder = project.run_dir(out, run_id)
    except RegistryError:
        return None
    if folder.is_symlink():
        folder.unlink()
        return None
    target = project.backups_dir(out) / "deleted" / run_id
    if target.exists():
        target = target.with_name(f"{run_id}-{_stamp()}")
    if not folder.exists() and record is not None:
        from meridian.registry.records import write_record_file

        written = write_record_file(record, out)  # into runs/<id>/, then moved like a folder
        folder = written.parent
    elif not folder.is_dir() or folder.resolve().parent != project.runs_dir(out).resolve():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(target))
    (target / DELETED_AT).write_text(repr(time.time()), encoding="utf-8")
    return target


DELETED_AT = ".deleted-at"
"""The file in a deleted run's backup folder that says when it was deleted (POSIX time)."""


def deleted_runs(out: Path) -> dict[str, float]:
    """Runs deleted from this output folder (their folders or records are in backups), each
    with when it was last deleted: an import after that brings the run back."""
    import json

    found: dict[str, float] = {}
    for folder in (project.backups_dir(out) / "deleted").glob("*/"):
        record = folder / "run.json"
        try:
            run_id = json.loads(record.read_text(encoding="utf-8"))["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            run_id = folder.name
        try:
            when = float((folder / DELETED_AT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            when = folder.stat().st_mtime  # a backup from before the marker
        found[str(run_id)] = max(when, found.get(str(run_id), when))
    return found


def move_damaged_aside(registry: Registry) -> Path:
    """Move a damaged registry file (and its WAL and shared-memory files) into ``backups/``
    as ``registry-damaged-<UTC time>.sqlite``; returns the new path of the main file."""
    folder = project.backups_dir(registry.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"registry-damaged-{_stamp()}.sqlite"
    for suffix in SQLITE_SUFFIXES:
        source = Path(f"{registry.path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
    return target
