"""A run record (a plain dict) ⇄ its registry row and its file ``runs/<run_id>/run.json``.

The file is the source of truth: everything the record holds (full equity curve, trades,
parameters, provenance), strict JSON, written atomically. The row is an index over it: the
columns that are filtered and sorted often, metrics and parameters as JSON for ``json_extract``,
a downsampled equity curve for the dashboard, and the rest of the record in ``extra``.
``drawdown`` is never stored (it follows from equity).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from meridian import project
from meridian._files import write_atomic
from meridian.exceptions import RegistryError
from meridian.record import clean_json, downsample

MAX_EQUITY_POINTS = 500
MIN_PREFIX = 4
STATUSES = ("success", "failed", "running", "interrupted")
KINDS = ("notebook", "api", "magic", "sweep", "walk_forward", "cell")
REQUIRED_KEYS = ("run_id", "strategy_name", "status")

RECORD_DEFAULTS: dict[str, Any] = {
    "run_id": None, "timestamp": None, "strategy_name": None, "params": {}, "metrics": {},
    "status": None, "error": None, "traceback": None, "duration": None, "notebook_path": None,
    "report_path": None, "source_hash": None, "equity": {"index": [], "values": []},
    "trades_count": None, "kind": "api", "name": None, "source": None, "logs": [],
    "settings": {}, "data": {}, "code": {}, "environment": {}, "changed": None, "tags": [],
    "note": "", "parent_id": None,
}
"""Every key a loaded record has, in order, with the value used when it was not saved."""

COLUMNS = ("run_id", "timestamp", "strategy_name", "status", "kind", "name", "duration",
           "trades_count")
"""Record keys that get their own SQL column (filtered and sorted often)."""
JSON_COLUMNS = ("params", "metrics", "equity")
PATH_KEYS = ("notebook_path", "report_path")
NOT_STORED = ("drawdown", "trades")
"""Record keys kept in the run's file but not in its row (``drawdown`` is kept nowhere)."""
RECORD_FILE = "run.json"

def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise RegistryError(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def normalize_timestamp(value: str | datetime | date | None) -> str:
    """ISO 8601 in UTC with a ``+00:00`` offset (naive times are taken as UTC).

    One format for every row keeps text order equal to time order, so SQL can sort and
    filter on the column directly.
    """
    if value is None:
        moment = datetime.now(UTC)
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise RegistryError(
                f"timestamp {value!r} is not ISO 8601 (e.g. 2024-01-31T12:00:00+00:00)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _number(value: Any, what: str) -> float | None:
    """A float, or ``None`` for a missing or undefined (NaN, inf) value."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RegistryError(f"{what} is {value!r}, not a number") from None
    return number if math.isfinite(number) else None


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, float | None]:
    return {str(name): _number(value, f"metric {name!r}")
            for name, value in (metrics or {}).items()}


def downsample_equity(equity: Any) -> dict[str, list]:
    """The registry's copy of a curve: at most :data:`MAX_EQUITY_POINTS` points (the run's
    file keeps all of them)."""
    return downsample(equity, MAX_EQUITY_POINTS)


def _store_path(value: Any, out: Path) -> str | None:
    """Relative to the output dir when inside it (so the folder can move), else absolute."""
    if value is None or str(value) == "":
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return os.path.abspath(path)


def _load_path(value: str | None, out: Path) -> str | None:
    if value is None:
        return None
    return value if Path(value).is_absolute() else os.path.join(out, value)


def _choice(record: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = record.get(key) if record.get(key) is not None else RECORD_DEFAULTS[key]
    if value not in allowed:
        raise RegistryError(f"{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def to_row(record: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Validate a record and split it into SQL columns plus JSON text."""
    if not isinstance(record, Mapping):
        raise RegistryError(f"a run record must be a dict, got {type(record).__name__}")
    for key in REQUIRED_KEYS:
        if record.get(key) in (None, ""):
            raise RegistryError(f"run record is missing required key {key!r}")
    trades_count = record.get("trades_count")
    if trades_count is None and record.get("trades") is not None:
        trades_count = len(record["trades"])
    extra = {k: v for k, v in record.items()
             if k not in COLUMNS and k not in JSON_COLUMNS and k not in NOT_STORED}
    for key in PATH_KEYS:
        extra[key] = _store_path(extra.get(key), out)
    extra = {k: v for k, v in clean_json(extra, "record").items() if v is not None}
    return {
        "run_id": project.check_run_id(str(record["run_id"])),
        "timestamp": normalize_timestamp(record.get("timestamp")),
        "strategy_name": str(record["strategy_name"]),
        "status": _choice(record, "status", STATUSES),
        "kind": _choice(record, "kind", KINDS),
        "name": None if record.get("name") is None else str(record["name"]),
        "duration": _number(record.get("duration"), "duration"),
        "trades_count": None if trades_count is None else int(trades_count),
        "params": dumps(clean_json(dict(record.get("params") or {}), "params")),
        "metrics": dumps(_metrics(record.get("metrics"))),
        "equity": dumps(downsample_equity(record.get("equity"))),
        "extra": dumps(extra),
    }


def from_row(row: sqlite3.Row, out: Path) -> dict[str, Any]:
    stored = {name: row[name] for name in COLUMNS}
    stored.update({name: json.loads(row[name]) for name in JSON_COLUMNS})
    stored.update(json.loads(row["extra"]))
    for key in PATH_KEYS:
        stored[key] = _load_path(stored.get(key), out)
    record = {key: stored.get(key, default) for key, default in RECORD_DEFAULTS.items()}
    record.update({k: v for k, v in stored.items() if k not in record})
    return record




# --------------------------------------------------------------------------- files


def record_file(out: Path, run_id: str) -> Path:
    """Where a run's record lives: ``runs/<run_id>/run.json``."""
    return project.run_dir(out, run_id) / RECORD_FILE


def write_record_file(record: Mapping[str, Any], out: Path) -> Path:
    """Write the whole record (cleaned to strict JSON; paths relative to the output dir when
    inside it, so the folder can move) to its file, atomically."""
    data = {k: v for k, v in record.items() if k != "drawdown"}
    for key in PATH_KEYS:
        if key in data:
            data[key] = _store_path(data[key], out)
    data["timestamp"] = normalize_timestamp(data.get("timestamp"))
    text = json.dumps(clean_json(data, "record"), allow_nan=False, separators=(",", ":"))
    return write_atomic(record_file(out, str(record["run_id"])), text + "\n")


def read_record_file(path: Path, out: Path) -> dict:
    """The record stored in ``path`` (paths made absolute again)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RegistryError(f"{path}: not a readable run record ({error})") from None
    if not isinstance(record, dict) or not record.get("run_id"):
        raise RegistryError(f"{path}: not a run record (no run_id)")
    for key in PATH_KEYS:
        record[key] = _load_path(record.get(key), out)
    return record
