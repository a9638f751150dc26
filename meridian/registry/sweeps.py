"""Sweeps in the registry and on disk: ``sweeps/<sweep_id>/`` is the source of truth.

A sweep folder holds ``sweep.json`` (the sweep's header: strategy, grid, metric, settings,
status, counts, owner process) and ``results/part-*.parquet``, the combinations' metrics,
appended in chunks as they finish (written by :mod:`meridian.sweep.store`). The ``sweeps``
table indexes the headers; ``meridian runs rebuild`` recreates it from the folders, counting
the rows actually on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from meridian import project
from meridian._files import write_atomic
from meridian.exceptions import RegistryError, RunNotFoundError
from meridian.registry.db import Registry, settled_status
from meridian.registry.records import MIN_PREFIX, clean_json, dumps, normalize_timestamp

PathLike = str | os.PathLike[str]
SWEEP_FILE = "sweep.json"
RESULTS = "results"
HEAD = ("sweep_id", "timestamp", "strategy_name", "status", "metric", "combinations",
        "completed", "duration")
SWEEP_STATUSES = ("running", "success", "partial", "failed", "interrupted")


def sweep_file(out: Path, sweep_id: str) -> Path:
    return project.sweep_dir(out, sweep_id) / SWEEP_FILE


def results_dir(out: Path, sweep_id: str) -> Path:
    return project.sweep_dir(out, sweep_id) / RESULTS


def count_results(out: Path, sweep_id: str) -> int:
    """Rows in the sweep's result files (from Parquet metadata: nothing is read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(part).metadata.num_rows
               for part in sorted(results_dir(out, sweep_id).glob("part-*.parquet")))


def save_sweep_header(info: dict[str, Any], output_dir: PathLike | None = None) -> None:
    """Write the sweep's ``sweep.json`` and its registry row (file first: it is the truth)."""
    if info.get("status") not in SWEEP_STATUSES:
        raise RegistryError(f"sweep status {info.get('status')!r} is not one of "
                            f"{', '.join(SWEEP_STATUSES)}")
    registry = Registry(output_dir)
    info = clean_json(dict(info), "sweep")
    write_atomic(sweep_file(registry.output_dir, info["sweep_id"]),
                 json.dumps(info, indent=1, allow_nan=False) + "\n")
    _insert(registry, info)


def _insert(registry: Registry, info: dict[str, Any]) -> None:
    extra = {k: v for k, v in info.items() if k not in HEAD}
    with registry.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO sweeps (sweep_id, timestamp, strategy_name, status, metric, "
            "combinations, completed, duration, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (info["sweep_id"], normalize_timestamp(info["timestamp"]), info["strategy_name"],
             info["status"], info["metric"], int(info["combinations"]),
             int(info["completed"]), info.get("duration"), dumps(extra)),
        )


def read_sweep_file(path: Path, out: Path) -> dict[str, Any]:
    """A sweep header from its file, ``completed`` counted from the rows on disk and a
    ``running`` status whose process is gone read as ``interrupted``."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RegistryError(f"{path}: not a readable sweep record ({error})") from None
    if not isinstance(info, dict) or not info.get("sweep_id"):
        raise RegistryError(f"{path}: not a sweep record (no sweep_id)")
    info["completed"] = count_results(out, info["sweep_id"])
    return settled_status(info)


def restore_sweep(info: dict[str, Any], registry: Registry) -> None:
    """Index a sweep read from its folder (``runs rebuild``)."""
    _insert(registry, info)


def resolve_sweep_id(prefix: str, output_dir: PathLike | None = None) -> str:
    """The sweep id equal to ``prefix`` or uniquely starting with it (4+ characters)."""
    registry = Registry(output_dir)
    prefix = str(prefix).strip()
    rows = registry.query(
        "SELECT sweep_id FROM sweeps WHERE sweep_id = ? OR (length(?) >= ? AND "
        "substr(sweep_id, 1, length(?)) = ?) ORDER BY sweep_id LIMIT 3",
        (prefix, prefix, MIN_PREFIX, prefix, prefix),
    )
    exact = [r["sweep_id"] for r in rows if r["sweep_id"] == prefix]
    if exact:
        return exact[0]
    if not rows:
        raise RunNotFoundError(f"no sweep {prefix!r} in {registry.path}")
    if len(rows) > 1:
        raise RunNotFoundError(f"sweep id prefix {prefix!r} is ambiguous in {registry.path}")
    return rows[0]["sweep_id"]


def load_sweep(sweep_id: str, output_dir: PathLike | None = None) -> dict[str, Any]:
    """A sweep's header: id, timestamp, strategy, status, metric, counts, timing, grid, …"""
    registry = Registry(output_dir)
    rows = registry.query("SELECT * FROM sweeps WHERE sweep_id = ?",
                          (resolve_sweep_id(sweep_id, output_dir),))
    if not rows:
        raise RunNotFoundError(f"no sweep {sweep_id!r} in {registry.path}")
    record = dict(rows[0])
    record.update(json.loads(record.pop("info")))
    return record


def list_sweeps(output_dir: PathLike | None = None) -> list[dict[str, Any]]:
    """Every sweep, newest first."""
    registry = Registry(output_dir)
    rows = registry.query("SELECT * FROM sweeps ORDER BY timestamp DESC, sweep_id")
    found = []
    for row in rows:
        record = dict(row)
        record.update(json.loads(record.pop("info")))
        found.append(record)
    return found
