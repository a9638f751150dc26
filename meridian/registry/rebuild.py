"""``meridian runs rebuild``: the registry recreated from the run and sweep folders.

Sources, all under the output directory: ``runs/<id>/run.json`` (every run's record; a run
that only has an executed notebook from an older Meridian is read from the notebook's metadata
and scraps), ``imports/*/part-*.jsonl`` (runs added by ``meridian runs import``, less those
deleted since), and ``sweeps/<id>/sweep.json`` with its result files. A healthy registry is backed
up first; a damaged one is moved aside (never deleted). The new index is built in a temporary
file, so a crash mid-rebuild leaves the old one untouched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from meridian import project
from meridian.exceptions import RegistryDamagedError, RegistryError
from meridian.record import SCRAP, record_keys
from meridian.registry.backup import (
    SQLITE_SUFFIXES,
    backup_registry,
    deleted_runs,
    move_damaged_aside,
)
from meridian.registry.db import Registry, settled_status
from meridian.registry.records import RECORD_FILE, read_record_file
from meridian.registry.sweeps import SWEEP_FILE, read_sweep_file, restore_sweep

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


def record_from_notebook(path: PathLike, notebook: Any = None) -> dict:
    """A run record from an executed notebook written by the pipeline.

    The kernel glues the run's record (:meth:`~meridian.record.RunRecord.glue`, the scrap
    ``record``); the pipeline keeps its bookkeeping (status, duration, paths, the parameters it
    injected) in the notebook metadata key ``meridian``, which wins. A notebook from an older
    Meridian glued ``metrics``, ``equity``, ``trades_count`` and ``provenance`` instead; those
    are read too. A failed run has no scraps: its metrics are empty and its params come from
    papermill's injected parameters. A relative ``report_path`` in the metadata is taken
    relative to the notebook's folder. :class:`RegistryError` when the notebook has no
    ``meridian`` metadata. Pass the already loaded ``notebook`` (a NotebookNode) to skip
    reading it again.
    """
    import nbformat  # deferred: heavy, and only rebuilds need it
    import scrapbook

    path = Path(path).absolute()
    if notebook is None:
        notebook = nbformat.read(path, as_version=4)
    meta = notebook.metadata.get("meridian")
    if not isinstance(meta, Mapping) or not meta.get("run_id"):
        raise RegistryError(f"{path} has no 'meridian' run metadata: not written by the pipeline")
    scraps = scrapbook.models.Notebook(notebook).scraps.data_dict
    glued = scraps.get(SCRAP)
    if not isinstance(glued, Mapping):  # an older Meridian's scraps
        glued = {"metrics": scraps.get("metrics") or {},
                 "equity": scraps.get("equity") or {"index": [], "values": []},
                 "trades_count": scraps.get("trades_count", meta.get("trades_count")),
                 **(scraps.get("provenance") or {})}  # data, settings, environment
    papermill_params = notebook.metadata.get("papermill", {}).get("parameters") or {}
    record = {**glued, **{key: meta[key] for key in record_keys() if key in meta}}
    record.update(
        params=dict(meta.get("params") or glued.get("params") or papermill_params),
        notebook_path=str(path),
        status=meta.get("status") or ("success" if glued.get("metrics") else "failed"),
    )
    if not record.get("code") and meta.get("source_hash"):  # written before `code` was
        record["code"] = {"notebook": meta.get("source_path"),
                          "notebook_sha256": meta["source_hash"]}
    report = meta.get("report_path")
    if report and not Path(report).is_absolute():
        record["report_path"] = str(path.parent / report)
    return record


def _run_sources(out: Path) -> list[Path]:
    """One source per run folder: its record file, else its executed notebook."""
    sources = []
    for folder in sorted(project.runs_dir(out).glob("*/")):
        record = folder / RECORD_FILE
        notebooks = sorted(folder.glob("*.ipynb"))
        if record.is_file():
            sources.append(record)
        elif notebooks:
            sources.append(notebooks[0])
    return sources


def _read_run(source: Path, out: Path) -> dict:
    if source.name == RECORD_FILE:
        return settled_status(read_record_file(source, out))
    return record_from_notebook(source)


def rebuild_registry(
    output_dir: PathLike | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> tuple[int, int]:
    """Recreate the registry from the run and sweep folders; return (runs, sweeps) restored.

    Unreadable sources are skipped, logged and passed to ``on_skip(path, reason)``. When a
    registry file exists, its content is replaced through SQLite's backup API in one
    transaction (renaming over a live WAL database would pair the new file with the old
    ``-wal``/``-shm`` files); a damaged one is moved aside first.
    """
    registry = Registry(output_dir)
    out = registry.output_dir
    if registry.exists:
        if _healthy(registry):
            backup_registry(out)
        else:
            moved = move_damaged_aside(registry)
            log.warning("rebuild: the damaged registry was moved to %s", moved)
    temp_path = out / f".registry-rebuild-{os.getpid()}.sqlite"
    _remove_sqlite_files(temp_path)
    fresh = Registry(out, db_path=temp_path)

    def skip(path: Path, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        log.warning("rebuild: skipping %s (%s)", path, reason)
        if on_skip is not None:
            on_skip(path, reason)

    runs = sweeps = 0
    try:
        fresh.check()
        runs += _restore_imported(out, fresh, skip)
        for source in _run_sources(out):
            try:
                fresh.save(_read_run(source, out))
            except Exception as error:  # noqa: BLE001 - one bad file must not stop a rebuild
                skip(source, error)
                continue
            runs += 1
        for header in sorted(project.sweeps_dir(out).glob(f"*/{SWEEP_FILE}")):
            try:
                restore_sweep(read_sweep_file(header, out), fresh)
            except Exception as error:  # noqa: BLE001
                skip(header, error)
                continue
            sweeps += 1
        _install(fresh, registry)
    finally:
        _remove_sqlite_files(temp_path)
    return runs, sweeps


def _restore_imported(out: Path, fresh: Registry, skip) -> int:
    """The runs ``meridian runs import`` added, from its files: not those deleted after the
    import (a run deleted, then imported again, is back), nor those that have a run folder
    (written later, by a tag or a note: the folder wins)."""
    from meridian.registry.records import to_row
    from meridian.registry.transfer import imported_records

    deleted = deleted_runs(out)
    ignore = {p.name for p in project.runs_dir(out).glob("*/")}
    rows: list[dict] = []
    count = 0
    for part, record in imported_records(out):
        if not isinstance(record, Exception) and isinstance(record, dict) and \
                deleted.get(str(record.get("run_id")), -1.0) >= part.stat().st_mtime:
            continue  # deleted after this import
        if isinstance(record, Exception):
            skip(part, record)
            continue
        try:
            row = to_row(record, out)
        except RegistryError as error:
            skip(part, error)
            continue
        if row["run_id"] in ignore:
            continue
        ignore.add(row["run_id"])
        rows.append(row)
        if len(rows) >= 5_000:
            fresh.insert_rows(rows)
            count += len(rows)
            rows = []
    fresh.insert_rows(rows)
    return count + len(rows)


def _healthy(registry: Registry) -> bool:
    """Whether SQLite can read the whole file (``PRAGMA quick_check`` visits every page)."""
    try:
        with registry.connect() as conn:
            return conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except RegistryDamagedError:
        return False


def _install(fresh: Registry, registry: Registry) -> None:
    """Make ``fresh``'s content the registry's, atomically."""
    if not registry.exists:
        for suffix in ("-wal", "-shm"):  # stale leftovers would be replayed into the new file
            Path(f"{registry.path}{suffix}").unlink(missing_ok=True)
        with fresh.connect() as conn:
            conn.execute("PRAGMA journal_mode = DELETE")  # fold the WAL into the main file
        os.replace(fresh.path, registry.path)
        registry.check()  # back to WAL
        return
    with fresh.connect() as source, registry.connect() as dest:
        source.backup(dest)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in SQLITE_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
