"""The run registry: one SQLite file indexing every run under an output directory.

Why SQLite (stdlib ``sqlite3``, no ORM): sweeps write from many processes at once, the
dashboard reads while they write, and a killed worker must never corrupt the index. WAL mode
gives concurrent readers plus one writer, ``busy_timeout`` makes writers queue instead of
failing, and short ``BEGIN IMMEDIATE`` transactions keep the queue moving. Connections are
opened per call and closed, so nothing is ever shared across processes.

The executed notebooks under ``outputs/runs/<run_id>/`` are the source of truth; the registry
is an index that :func:`rebuild_registry` can recreate from them at any time.

A run record is a plain dict in the :meth:`meridian.api.BacktestResult.to_dict` shape plus the
extras listed in :data:`RECORD_DEFAULTS`. ``drawdown`` and ``trades`` are accepted but not
stored (the notebook and report keep them); ``trades_count`` is derived from ``trades`` when
it is not given.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from meridian import project
from meridian.engine.metrics import METRIC_NAMES
from meridian.exceptions import RegistryError, RunNotFoundError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

BUSY_TIMEOUT_MS = 60_000
"""How long a connection waits for another process's lock before giving up."""

MAX_EQUITY_POINTS = 500
MIN_PREFIX = 4
STATUSES = ("success", "failed", "running")
KINDS = ("notebook", "api", "magic")
REQUIRED_KEYS = ("run_id", "strategy_name", "status")
LOWER_IS_BETTER = frozenset({"max_drawdown_duration", "volatility"})
"""Metrics where the best run has the smallest value (max_drawdown is negative: max is best)."""

RECORD_DEFAULTS: dict[str, Any] = {
    "run_id": None, "timestamp": None, "strategy_name": None, "params": {}, "metrics": {},
    "status": None, "error": None, "traceback": None, "duration": None, "notebook_path": None,
    "report_path": None, "source_hash": None, "equity": {"index": [], "values": []},
    "trades_count": None, "kind": "notebook", "name": None, "source": None, "logs": [],
}
"""Every key a loaded record has, in order, with the value used when it was not saved."""

COLUMNS = ("run_id", "timestamp", "strategy_name", "status", "kind", "name", "duration",
           "trades_count")
"""Record keys that get their own SQL column (filtered and sorted often)."""
JSON_COLUMNS = ("params", "metrics", "equity")
PATH_KEYS = ("notebook_path", "report_path")
NOT_STORED = ("drawdown", "trades")

# Each entry upgrades the schema by one version (PRAGMA user_version). Append, never edit:
# a later version can add sweep tables (e.g. ``sweeps`` and a ``runs.sweep_id`` column).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS runs (
            run_id        TEXT PRIMARY KEY,
            seq           INTEGER NOT NULL,
            timestamp     TEXT NOT NULL,
            strategy_name TEXT NOT NULL,
            status        TEXT NOT NULL,
            kind          TEXT NOT NULL DEFAULT 'notebook',
            name          TEXT,
            duration      REAL,
            trades_count  INTEGER,
            params        TEXT NOT NULL DEFAULT '{}',
            metrics       TEXT NOT NULL DEFAULT '{}',
            equity        TEXT NOT NULL DEFAULT '{"index": [], "values": []}',
            extra         TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE UNIQUE INDEX IF NOT EXISTS idx_runs_seq ON runs (seq)",
        "CREATE INDEX IF NOT EXISTS idx_runs_timestamp ON runs (timestamp, seq)",
        "CREATE INDEX IF NOT EXISTS idx_runs_strategy ON runs (strategy_name)",
        "CREATE INDEX IF NOT EXISTS idx_runs_status ON runs (status)",
    ),
    (  # version 2: parameter sweeps (one row per sweep, one per combination; no curves)
        """CREATE TABLE IF NOT EXISTS sweeps (
            sweep_id      TEXT PRIMARY KEY,
            timestamp     TEXT NOT NULL,
            strategy_name TEXT NOT NULL,
            status        TEXT NOT NULL,
            metric        TEXT NOT NULL,
            combinations  INTEGER NOT NULL,
            completed     INTEGER NOT NULL,
            duration      REAL,
            info          TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE TABLE IF NOT EXISTS sweep_results (sweep_id TEXT NOT NULL, idx INTEGER NOT NULL, "
        "params TEXT NOT NULL, error TEXT, "
        + ", ".join(f"{name} REAL" for name in METRIC_NAMES) + ", "
        + ", ".join(f"oos_{name} REAL" for name in METRIC_NAMES)
        + ", PRIMARY KEY (sweep_id, idx))",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- connections


def _is_locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _retry_locked(action: Callable[[], Any], seconds: float = BUSY_TIMEOUT_MS / 1000) -> Any:
    """Run ``action``, retrying on ``database is locked``. Needed around the WAL switch and
    schema creation: when many processes create the file at once, SQLite can report a lock
    there without waiting for ``busy_timeout``."""
    deadline = time.monotonic() + seconds
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not _is_locked(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


class Registry:
    """The registry of one output directory; every method opens and closes its connection."""

    def __init__(self, output_dir: PathLike | None = None, db_path: PathLike | None = None):
        self.output_dir = project.output_dir(output_dir)
        self.path = Path(db_path) if db_path is not None else project.registry_path(self.output_dir)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A ready connection (WAL, busy timeout, current schema), closed on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            _retry_locked(lambda: self._prepare(conn))
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front so two
        writers never deadlock upgrading read locks."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower()
            if mode != "wal":
                raise RegistryError(f"cannot put {self.path} in WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under lock
            if version > SCHEMA_VERSION:
                raise RegistryError(
                    f"{self.path} has schema version {version}; this Meridian reads up to "
                    f"{SCHEMA_VERSION}: upgrade Meridian"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        """Rows of a read query; no rows (and no file created) when there is no registry yet."""
        if not self.exists:
            return []
        with self.connect() as conn:
            return conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ records

    def save(self, record: Mapping[str, Any]) -> str:
        row = _to_row(record, self.output_dir)
        names = list(row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != "run_id")
        sql = (
            f"INSERT INTO runs (seq, {', '.join(names)}) "
            f"VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM runs), "
            f"{', '.join('?' for _ in names)}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
        with self.transaction() as conn:
            conn.execute(sql, [row[name] for name in names])
        return row["run_id"]

    def load(self, where: str = "", args: tuple | list = (), order: str = "",
             limit: int | None = None) -> list[dict]:
        sql = f"SELECT * FROM runs {where} ORDER BY {order or ''}timestamp DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {_check_limit(limit)}"
        return [_from_row(row, self.output_dir) for row in self.query(sql, args)]

    def resolve(self, prefix: str) -> str:
        """The one run id equal to ``prefix`` or starting with it (at least 4 characters)."""
        prefix = str(prefix).strip()
        rows = self.query("SELECT run_id FROM runs WHERE run_id = ?", (prefix,))
        if rows:
            return rows[0]["run_id"]
        if len(prefix) < MIN_PREFIX:
            raise RunNotFoundError(
                f"no run {prefix!r} in {self.path} (a prefix needs {MIN_PREFIX}+ characters)"
            )
        rows = self.query(
            "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 11",
            (len(prefix), prefix),
        )
        if not rows:
            raise RunNotFoundError(f"no run {prefix!r} in {self.path}")
        if len(rows) > 1:
            ids = [row["run_id"] for row in rows[:10]]
            more = ", ..." if len(rows) > 10 else ""
            raise RunNotFoundError(
                f"run id prefix {prefix!r} is ambiguous in {self.path}: "
                f"matches {', '.join(ids)}{more}"
            )
        return rows[0]["run_id"]

    def metric_names(self) -> list[str]:
        """Metric names present in at least one run."""
        rows = self.query("SELECT DISTINCT key FROM runs, json_each(runs.metrics) ORDER BY key")
        return [row["key"] for row in rows]


# --------------------------------------------------------------------------- record <-> row


def _check_limit(limit: int) -> int:
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


def _clean(value: Any, where: str) -> Any:
    """``value`` as strict-JSON-ready Python: NaN/inf → None, numpy scalars → Python, tuples →
    lists, paths and times → strings. Anything else is refused, naming where it sits."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        with suppress(TypeError, ValueError):
            return _clean(value.item(), where)
    raise RegistryError(f"{where} holds a {type(value).__name__}, which cannot be stored as JSON")


def _dumps(value: Any) -> str:
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
    """``{"index", "values"}`` with at most 500 evenly spaced points, first and last kept.

    A pandas Series is accepted too. The full curve lives in the notebook; the registry keeps
    enough for a dashboard sparkline without bloating every row.
    """
    if equity is None:
        return {"index": [], "values": []}
    if hasattr(equity, "index") and hasattr(equity, "tolist"):  # a pandas Series
        equity = {"index": [ts.isoformat() for ts in equity.index], "values": equity.tolist()}
    if not isinstance(equity, Mapping) or not {"index", "values"} <= set(equity):
        raise RegistryError('equity must be a dict with "index" and "values" lists')
    index, values = list(equity["index"]), list(equity["values"])
    if len(index) != len(values):
        raise RegistryError(f"equity has {len(index)} index entries but {len(values)} values")
    n = len(index)
    if n > MAX_EQUITY_POINTS:
        step = (n - 1) / (MAX_EQUITY_POINTS - 1)
        keep = [round(i * step) for i in range(MAX_EQUITY_POINTS)]
        index, values = [index[i] for i in keep], [values[i] for i in keep]
    return {"index": _clean(index, "equity.index"), "values": _clean(values, "equity.values")}


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


def _to_row(record: Mapping[str, Any], out: Path) -> dict[str, Any]:
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
    extra = {k: v for k, v in _clean(extra, "record").items() if v is not None}
    return {
        "run_id": project.check_run_id(str(record["run_id"])),
        "timestamp": normalize_timestamp(record.get("timestamp")),
        "strategy_name": str(record["strategy_name"]),
        "status": _choice(record, "status", STATUSES),
        "kind": _choice(record, "kind", KINDS),
        "name": None if record.get("name") is None else str(record["name"]),
        "duration": _number(record.get("duration"), "duration"),
        "trades_count": None if trades_count is None else int(trades_count),
        "params": _dumps(_clean(dict(record.get("params") or {}), "params")),
        "metrics": _dumps(_metrics(record.get("metrics"))),
        "equity": _dumps(downsample_equity(record.get("equity"))),
        "extra": _dumps(extra),
    }


def _from_row(row: sqlite3.Row, out: Path) -> dict[str, Any]:
    stored = {name: row[name] for name in COLUMNS}
    stored.update({name: json.loads(row[name]) for name in JSON_COLUMNS})
    stored.update(json.loads(row["extra"]))
    for key in PATH_KEYS:
        stored[key] = _load_path(stored.get(key), out)
    record = {key: stored.get(key, default) for key, default in RECORD_DEFAULTS.items()}
    record.update({k: v for k, v in stored.items() if k not in record})
    return record


# --------------------------------------------------------------------------- public API


def save_run(record: Mapping[str, Any], output_dir: PathLike | None = None) -> str:
    """Insert ``record`` (or replace the run with the same ``run_id``); return the run id.

    A replaced run keeps its original insertion position, so re-saving a ``running`` run as
    ``success`` does not reorder runs that share its timestamp.
    """
    return Registry(output_dir).save(record)


def load_all_runs(output_dir: PathLike | None = None, limit: int | None = None) -> list[dict]:
    """Every run, newest first (by timestamp, then by insertion order)."""
    return Registry(output_dir).load(limit=limit)


def resolve_run_id(prefix: str, output_dir: PathLike | None = None) -> str:
    """The full id of the run ``prefix`` names: an exact id or an unambiguous prefix of 4+
    characters, as git does for commits. :class:`RunNotFoundError` otherwise."""
    return Registry(output_dir).resolve(prefix)


def load_run_by_id(run_id: str, output_dir: PathLike | None = None) -> dict:
    """One run by exact id or unambiguous prefix (see :func:`resolve_run_id`)."""
    registry = Registry(output_dir)
    full = registry.resolve(run_id)
    runs = registry.load("WHERE run_id = ?", (full,))
    if not runs:  # deleted by another process in between
        raise RunNotFoundError(f"no run {run_id!r} in {registry.path}")
    return runs[0]


def delete_run(run_id: str, output_dir: PathLike | None = None) -> dict:
    """Delete one run's row and its folder ``runs/<run_id>/``; return the deleted record.

    The registry is backed up first. Only the run's own folder is removed, and only when it
    really lies inside the output directory (a symlinked folder is unlinked, not followed).
    """
    registry = Registry(output_dir)
    record = load_run_by_id(run_id, output_dir=registry.output_dir)
    backup_registry(registry.output_dir)
    with registry.transaction() as conn:
        conn.execute("DELETE FROM runs WHERE run_id = ?", (record["run_id"],))
    _remove_run_folder(registry.output_dir, record["run_id"])
    return record


def delete_runs(run_ids: Iterable[str], output_dir: PathLike | None = None) -> list[dict]:
    """Delete several runs as :func:`delete_run` does, with a single backup taken first (one
    backup per run would rotate the pre-delete copy out of the last five). Every id is
    resolved before anything is deleted, so one unknown id deletes nothing. Returns the
    deleted records (a run named twice is deleted once)."""
    registry = Registry(output_dir)
    records: dict[str, dict] = {}
    for run_id in run_ids:
        record = load_run_by_id(run_id, output_dir=registry.output_dir)
        records.setdefault(record["run_id"], record)
    if not records:
        return []
    backup_registry(registry.output_dir)
    with registry.transaction() as conn:
        conn.executemany("DELETE FROM runs WHERE run_id = ?", [(i,) for i in records])
    for run_id in records:
        _remove_run_folder(registry.output_dir, run_id)
    return list(records.values())


def _remove_run_folder(out: Path, run_id: str) -> None:
    try:
        folder = project.run_dir(out, run_id)
    except RegistryError:
        log.warning("not removing a folder for run id %r: not a plain name", run_id)
        return
    if folder.is_symlink():
        folder.unlink()
        return
    if not folder.is_dir():
        return
    root = project.runs_dir(out).resolve()
    target = folder.resolve()
    if target.parent != root:
        log.warning("not removing %s: it resolves outside %s", folder, root)
        return
    shutil.rmtree(target)


def get_registry_stats(output_dir: PathLike | None = None) -> dict:
    """Totals, counts by status and by strategy, and the best run for each metric.

    ``best[metric]`` is ``{"run_id", "strategy_name", "value"}``: the highest value, except
    for :data:`LOWER_IS_BETTER` metrics (lowest). Null values are ignored; on a tie the
    newest run wins.
    """
    registry = Registry(output_dir)
    rows = registry.query(
        "SELECT run_id, strategy_name, status, metrics FROM runs ORDER BY timestamp DESC, seq DESC"
    )
    by_status: dict[str, int] = {}
    by_strategy: dict[str, int] = {}
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        by_strategy[row["strategy_name"]] = by_strategy.get(row["strategy_name"], 0) + 1
        for name, value in json.loads(row["metrics"]).items():
            if value is None:
                continue
            current = best.get(name)
            better = (current is None
                      or (value < current["value"] if name in LOWER_IS_BETTER
                          else value > current["value"]))
            if better:
                best[name] = {"run_id": row["run_id"], "strategy_name": row["strategy_name"],
                              "value": value}
    return {"total": len(rows), "by_status": by_status, "by_strategy": by_strategy,
            "best": dict(sorted(best.items()))}


SORT_COLUMNS = {
    "timestamp": "timestamp DESC", "strategy_name": "strategy_name ASC", "status": "status ASC",
    "kind": "kind ASC", "name": "name ASC", "duration": "duration ASC",
    "trades_count": "trades_count DESC", "run_id": "run_id ASC",
}
"""Columns ``search_runs`` can sort by, with their direction (metrics sort descending)."""


def _json_path(key: str, what: str) -> str:
    if '"' in key:
        raise RegistryError(f"{what} name {key!r} cannot contain a double quote")
    return f'$."{key}"'


def _check_metric(registry: Registry, name: str, what: str) -> None:
    known = set(METRIC_NAMES) | set(registry.metric_names())
    if name not in known:
        raise RegistryError(f"unknown metric {name!r} in {what}; valid: {', '.join(sorted(known))}")


def _param_clause(key: str, value: Any) -> tuple[str, list]:
    path = _json_path(key, "param")
    if value is None:
        return "json_type(params, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(params, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, (dict, list, tuple)):
        return "json_extract(params, ?) = json(?)", [path, _dumps(_clean(value, key))]
    return "json_extract(params, ?) = ?", [path, _clean(value, key)]


def search_runs(
    strategy: str | None = None,
    status: str | None = None,
    since: str | datetime | date | None = None,
    until: str | datetime | date | None = None,
    params: Mapping[str, Any] | None = None,
    metric_min: Mapping[str, float] | None = None,
    metric_max: Mapping[str, float] | None = None,
    sort: str | None = None,
    limit: int | None = None,
    output_dir: PathLike | None = None,
) -> list[dict]:
    """Runs matching every given filter, newest first unless ``sort`` says otherwise.

    ``since``/``until`` bound the timestamp (both inclusive); ``params`` match by exact equality
    of each value; ``metric_min``/``metric_max`` are inclusive bounds, and a run whose metric is
    null never matches them. ``sort`` is a metric name (highest first, nulls last) or one of
    :data:`SORT_COLUMNS`. The filters run in SQL through ``json_extract``.
    """
    registry = Registry(output_dir)
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("strategy_name", strategy), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        clauses.append("timestamp >= ?")
        args.append(normalize_timestamp(since))
    if until is not None:
        clauses.append("timestamp <= ?")
        args.append(normalize_timestamp(until))
    for key, value in (params or {}).items():
        clause, clause_args = _param_clause(str(key), value)
        clauses.append(clause)
        args.extend(clause_args)
    for bounds, op, what in ((metric_min, ">=", "metric_min"), (metric_max, "<=", "metric_max")):
        for name, bound in (bounds or {}).items():
            _check_metric(registry, name, what)
            clauses.append(f"json_extract(metrics, ?) {op} ?")
            args.extend([_json_path(name, "metric"), float(bound)])
    order = ""
    if sort is not None:
        order, order_args = _sort_clause(registry, sort)
        args.extend(order_args)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return registry.load(where, args, order=order, limit=limit)


def _sort_clause(registry: Registry, sort: str) -> tuple[str, list]:
    """An ``ORDER BY`` prefix (nulls last) for a column or metric name."""
    if sort in SORT_COLUMNS:
        column = SORT_COLUMNS[sort].split()[0]
        return f"({column} IS NULL), {SORT_COLUMNS[sort]}, ", []
    metrics = set(METRIC_NAMES) | set(registry.metric_names())
    if sort in metrics:
        return ("(json_extract(metrics, ?) IS NULL), json_extract(metrics, ?) DESC, ",
                [_json_path(sort, "metric")] * 2)
    valid = ", ".join([*SORT_COLUMNS, *sorted(metrics)])
    raise RegistryError(f"cannot sort by {sort!r}; valid: {valid}")


def export_runs(path: PathLike | None = None, output_dir: PathLike | None = None) -> Path:
    """Write every run (as :func:`load_all_runs` returns them) to a strict JSON file.

    ``path`` defaults to ``backtest_runs.json`` in the output dir; a directory gets that name
    inside it. The file is written to a temporary name and renamed, so readers never see half.
    """
    registry = Registry(output_dir)
    target = Path(path) if path is not None else registry.output_dir / "backtest_runs.json"
    if target.is_dir():
        target = target / "backtest_runs.json"
    text = json.dumps(registry.load(), indent=2, allow_nan=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.write_text(text + "\n", encoding="utf-8")
    os.replace(temp, target)
    return target.absolute()


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
    os.replace(temp, target)
    _prune_backups(folder, keep)
    return target


def _fresh_backup_name(folder: Path) -> Path:
    """A backup path no other process has claimed (names are unique to the microsecond)."""
    while True:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = folder / f"registry-{stamp}.sqlite"
        try:
            fd = os.open(target.with_name(target.name + ".tmp"), os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            time.sleep(0.000_01)
            continue
        os.close(fd)
        return target


def _prune_backups(folder: Path, keep: int) -> None:
    backups = sorted(folder.glob("registry-*.sqlite"))  # fixed-width names sort by time
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- notebooks


def record_from_notebook(path: PathLike, notebook: Any = None) -> dict:
    """A run record from an executed notebook written by the pipeline.

    The pipeline stores bookkeeping in the notebook metadata key ``meridian`` and glues the
    results with scrapbook (``metrics``, ``params``, ``equity``, ``trades_count``). A failed
    run has no scraps: its metrics are empty and its params come from papermill's injected
    parameters. A relative ``report_path`` in the metadata is taken relative to the notebook's
    folder. :class:`RegistryError` when the notebook has no ``meridian`` metadata. Pass the
    already loaded ``notebook`` (a NotebookNode) to skip reading it again.
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
    papermill_params = notebook.metadata.get("papermill", {}).get("parameters") or {}
    record = {key: meta[key] for key in RECORD_DEFAULTS if key in meta}
    record.update(
        params=dict(scraps.get("params") or meta.get("params") or papermill_params),
        metrics=dict(scraps.get("metrics") or {}),
        equity=scraps.get("equity") or {"index": [], "values": []},
        trades_count=scraps.get("trades_count", meta.get("trades_count")),
        notebook_path=str(path),
        status=meta.get("status") or ("success" if "metrics" in scraps else "failed"),
    )
    report = meta.get("report_path")
    if report and not Path(report).is_absolute():
        record["report_path"] = str(path.parent / report)
    return record


def rebuild_registry(
    output_dir: PathLike | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> int:
    """Recreate the registry from the executed notebooks ``runs/*/*.ipynb``; return the count.

    The old registry is backed up first. The new index is built in a temporary file, so a
    crash mid-rebuild leaves the old one untouched. Notebooks without ``meridian`` metadata
    (or unreadable ones) are skipped, logged, and passed to ``on_skip(path, reason)``.

    When no registry file exists, the temporary file is moved into place with ``os.replace``.
    When one does, its content is replaced through SQLite's backup API instead, in one
    transaction: renaming over a live WAL database would pair the new file with the old
    ``-wal``/``-shm`` files and corrupt it for any process that has it open.
    """
    registry = Registry(output_dir)
    out = registry.output_dir
    backup_registry(out)
    temp_path = out / f".registry-rebuild-{os.getpid()}.sqlite"
    _remove_sqlite_files(temp_path)
    fresh = Registry(out, db_path=temp_path)
    restored = 0
    try:
        for notebook in sorted(project.runs_dir(out).glob("*/*.ipynb")):
            try:
                fresh.save(record_from_notebook(notebook))
            except Exception as error:  # noqa: BLE001 - one bad notebook must not stop a rebuild
                reason = f"{type(error).__name__}: {error}"
                log.warning("rebuild: skipping %s (%s)", notebook, reason)
                if on_skip is not None:
                    on_skip(notebook, reason)
                continue
            restored += 1
        _warn_dropped(registry, fresh)
        _install(fresh, registry)
    finally:
        _remove_sqlite_files(temp_path)
    return restored


def _warn_dropped(registry: Registry, fresh: Registry) -> None:
    """Log the runs a rebuild loses (e.g. API runs that never had a notebook)."""
    old = {row["run_id"] for row in registry.query("SELECT run_id FROM runs")}
    dropped = sorted(old - {row["run_id"] for row in fresh.query("SELECT run_id FROM runs")})
    if dropped:
        log.warning("rebuild: %d run(s) have no notebook and leave the registry (kept in the "
                    "backup): %s", len(dropped), ", ".join(dropped))


def _install(fresh: Registry, registry: Registry) -> None:
    """Make ``fresh``'s content the registry's, atomically."""
    if not registry.exists:
        for suffix in ("-wal", "-shm"):  # stale leftovers would be replayed into the new file
            Path(f"{registry.path}{suffix}").unlink(missing_ok=True)
        with fresh.connect() as conn:
            conn.execute("PRAGMA journal_mode = DELETE")  # fold the WAL into the main file
        os.replace(fresh.path, registry.path)
        with registry.connect():  # back to WAL
            pass
        return
    with fresh.connect() as source, registry.connect() as dest:
        source.backup(dest)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
