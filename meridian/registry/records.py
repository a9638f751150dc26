"""A run record (a plain dict) ⇄ its registry row and its file ``runs/<run_id>/run.json``.

The file is the source of truth: everything the record holds (full equity curve, trades,
parameters, provenance), strict JSON, written atomically. The row is an index over it: the
columns that are filtered and sorted often, metrics and parameters as JSON for ``json_extract``,
a downsampled equity curve for the dashboard, and the rest of the record in ``extra``.
``drawdown`` is never stored (it follows from equity).
"""

from __future__ import annotations

import functools
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
from meridian.record import (
    STORED_APART,
    clean_json,
    downsample,
    missing_value,
    record_keys,
    strict_json,
)
from meridian.registry import curves

MAX_EQUITY_POINTS = 250
"""Points of a curve kept in its registry row (packed: :mod:`meridian.registry.curves`); the
run's file keeps all of them."""
MIN_PREFIX = 4
STATUSES = ("success", "failed", "running", "interrupted", "queued")
KINDS = ("notebook", "api", "magic", "sweep", "walk_forward", "cell", "portfolio")
REQUIRED_KEYS = ("run_id", "strategy_name", "status")

COLUMNS = ("run_id", "timestamp", "strategy_name", "status", "kind", "name", "duration",
           "trades_count")
"""Record keys that get their own SQL column (filtered and sorted often)."""
JSON_COLUMNS = ("params", "metrics")
PATH_KEYS = ("notebook_path", "report_path")
NOT_STORED = STORED_APART
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


@functools.lru_cache(maxsize=32)
def _real(folder: str) -> str:
    return os.path.realpath(folder)


def _store_path(value: Any, out: Path) -> str | None:
    """Relative to the output dir when inside it (so the folder can move), else absolute."""
    if value is None or str(value) == "":
        return None
    path = os.path.abspath(os.path.expanduser(os.fspath(value)))
    for root in dict.fromkeys((os.path.abspath(out), _real(os.fspath(out)))):
        if path.startswith(root + os.sep):  # the folder as spelled, or its real path
            return Path(os.path.relpath(path, root)).as_posix()
    return path


def _load_path(value: str | None, out: Path) -> str | None:
    if value is None:
        return None
    return value if os.path.isabs(value) else os.path.join(out, value)


def _choice(record: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = record.get(key) if record.get(key) is not None else missing_value(key)
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
    for key in ("params", "metrics"):
        if record.get(key) is not None and not isinstance(record[key], Mapping):
            raise RegistryError(f"run record's {key!r} must be a dict of name → value, got a "
                                f"{type(record[key]).__name__}")
    trades_count = record.get("trades_count")
    if trades_count is None and record.get("trades") is not None:
        trades_count = len(record["trades"])
    extra = {k: v for k, v in record.items()
             if k not in COLUMNS and k not in JSON_COLUMNS and k not in NOT_STORED
             and k != "equity" and v is not None}
    for key in PATH_KEYS:
        if key in extra:
            extra[key] = _store_path(extra[key], out)
    try:
        extra_text = json.dumps(extra, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):  # NaN, numpy scalars, paths: clean, and drop what is None
        extra_text = dumps({k: v for k, v in clean_json(extra, "record").items()
                            if v is not None})
    return {
        "run_id": project.check_run_id(str(record["run_id"])),
        "timestamp": normalize_timestamp(record.get("timestamp")),
        "strategy_name": str(record["strategy_name"]),
        "status": _choice(record, "status", STATUSES),
        "kind": _choice(record, "kind", KINDS),
        "name": None if record.get("name") is None else str(record["name"]),
        "duration": _number(record.get("duration"), "duration"),
        "trades_count": None if trades_count is None else int(trades_count),
        "params": strict_json(dict(record.get("params") or {}), "params"),
        "metrics": dumps(_metrics(record.get("metrics"))),
        "equity": curves.pack(downsample_equity(record.get("equity"))),
        "extra": extra_text,
    }


class LazyRecord(curves.LazyDict):
    """A record read from a row. The columns are there at once; ``params``, ``metrics``,
    ``equity`` and the rest (``extra``) are parsed from their JSON when first read, so
    listing 100,000 runs parses only what is looked at."""

    __slots__ = ("_texts", "_out")

    def __init__(self, row: sqlite3.Row, out: Path):
        super().__init__((name, row[name]) for name in COLUMNS)
        self._texts = {"params": row["params"], "metrics": row["metrics"],
                       "equity": row["equity"], "extra": row["extra"]}
        self._out, self._pending = out, True

    def _part(self, name: str) -> None:
        text = self._texts.pop(name, None)
        if text is None:
            return
        if name == "equity":
            dict.__setitem__(self, "equity", curves.Curve(text))
        elif name == "extra":
            extra = json.loads(text)
            for key in PATH_KEYS:
                extra[key] = _load_path(extra.get(key), self._out)
            for key, value in extra.items():
                dict.__setitem__(self, key, value)
        else:
            dict.__setitem__(self, name, json.loads(text))

    def _lookup(self, key: Any) -> Any:
        if self._pending and not dict.__contains__(self, key):
            self._part(key if key in ("params", "metrics", "equity") else "extra")
            if not dict.__contains__(self, key) and key in record_keys():
                dict.__setitem__(self, key, missing_value(key))
        return dict.__getitem__(self, key)

    def _materialize(self) -> None:
        for name in ("params", "metrics", "equity", "extra"):
            self._part(name)
        loaded = dict(dict.items(self))
        dict.clear(self)
        for key in record_keys():  # RunRecord's order, then whatever else the record holds
            dict.__setitem__(self, key, loaded.pop(key) if key in loaded else missing_value(key))
        dict.update(self, loaded)


def from_row(row: sqlite3.Row, out: Path) -> dict[str, Any]:
    """The record of a registry row (see :class:`LazyRecord`)."""
    return LazyRecord(row, out)


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
    text = strict_json(data, "record")
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
