"""Opening the registry: WAL mode, the schema, a damaged file, records whose process is gone.

Why SQLite (stdlib ``sqlite3``, no ORM): sweeps write from many processes at once, the
dashboard reads while they write, and a killed worker must never corrupt the index. WAL mode
gives concurrent readers plus one writer, ``busy_timeout`` makes writers queue instead of
failing, and short ``BEGIN IMMEDIATE`` transactions keep the queue moving. Connections are
opened per call and closed, so nothing is ever shared across processes.

Every ``sqlite3`` error becomes a one-line :class:`~meridian.exceptions.RegistryError`; a file
SQLite cannot read (garbage, overwritten pages) becomes :class:`RegistryDamagedError`, which
names the cure (``meridian runs rebuild``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meridian import _process, project
from meridian.exceptions import RegistryDamagedError, RegistryError, RunNotFoundError
from meridian.registry.records import MIN_PREFIX, check_limit, from_row, to_row

PathLike = str | os.PathLike[str]

ANNOTATIONS_SQL = ("SELECT json_extract(extra, '$.tags'), json_extract(extra, '$.note') "
                   "FROM runs WHERE run_id = ?")
BUSY_TIMEOUT_MS = 60_000
"""How long a connection waits for another process's lock before giving up."""

# Each entry upgrades the schema by one version (PRAGMA user_version). Append, never edit.
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
    (  # version 2: parameter sweeps (one row per sweep)
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
    ),
    (  # version 3: a sweep's combinations live in its folder (Parquet), so adding a metric
        # never changes the schema; the status index finds records left `running`.
        "DROP TABLE IF EXISTS sweep_results",
        "CREATE INDEX IF NOT EXISTS idx_sweeps_status ON sweeps (status)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_reaped: set[str] = set()
"""Registries whose stale ``running`` records this process has already looked for."""


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


def is_damage(error: sqlite3.Error) -> bool:
    """Whether ``error`` means the file itself is unreadable (not a lock, not a bad query)."""
    text = str(error).lower()
    return isinstance(error, sqlite3.DatabaseError) and any(
        words in text for words in ("not a database", "malformed", "disk image", "corrupt",
                                    "file is encrypted", "unsupported file format"))


class Registry:
    """The registry of one output directory; every method opens and closes its connection."""

    def __init__(self, output_dir: PathLike | None = None, db_path: PathLike | None = None):
        self.output_dir = project.output_dir(output_dir)
        self.path = Path(db_path) if db_path is not None else project.registry_path(
            self.output_dir)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _error(self, error: sqlite3.Error) -> RegistryError:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        if is_damage(error):
            return RegistryDamagedError(
                f"the registry file {self.path} is damaged (sqlite: {first}); run `meridian "
                "runs rebuild` to rebuild it from the run and sweep folders (the damaged file "
                "is kept)")
        return RegistryError(f"registry {self.path}: sqlite error: {first}")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A ready connection (WAL, busy timeout, current schema), closed on exit. Any sqlite
        error inside the block comes out as one :class:`RegistryError`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
            conn.row_factory = sqlite3.Row
            _retry_locked(lambda: self._prepare(conn))
            yield conn
        except sqlite3.Error as error:
            raise self._error(error) from None
        finally:
            if conn is not None:
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
        key = str(self.path.resolve())
        if key not in _reaped:
            _reaped.add(key)
            reap_stale(conn)

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

    def check(self) -> None:
        """Open the registry (creating it) so that a damaged file is reported before any
        work starts, not after a run has been computed."""
        with self.connect() as conn:
            conn.execute("SELECT count(*) FROM runs WHERE rowid < 0").fetchone()


    # ------------------------------------------------------------------ records

    def save(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or replace the run. Its tags and note are the row's own, changed only by
        :meth:`annotate`: a run already here keeps its tags (the record's are added) and its
        note (unless it has none), so a run that finishes never wipes the tags added while
        it ran. Returns the ``tags`` and ``note`` the row ended with."""
        row = to_row(record, self.output_dir)  # validates first: a bad record writes nothing
        names = list(row)
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != "run_id")
        sql = (
            f"INSERT INTO runs (seq, {', '.join(names)}) "
            f"VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM runs), "
            f"{', '.join('?' for _ in names)}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}"
        )
        extra = json.loads(row["extra"])
        tags, note = list(extra.get("tags") or []), extra.get("note") or ""
        with self.transaction() as conn:
            found = conn.execute(ANNOTATIONS_SQL, (row["run_id"],)).fetchone()
            if found is not None:
                kept = json.loads(found[0] or "[]")
                tags = kept + [tag for tag in tags if tag not in kept]
                note = found[1] or note
                row["extra"] = json.dumps({**extra, "tags": tags, "note": note},
                                          separators=(",", ":"))
            conn.execute(sql, [row[name] for name in names])
        return {"tags": tags, "note": note}

    def annotate(self, run_id: str, add: Sequence[str] = (), remove: Sequence[str] = (),
                 note: str | None = None) -> dict[str, Any]:
        """Change a run's tags (``add``, ``remove``) and ``note`` in one write transaction
        that touches only those fields: two processes tagging one run at once both land."""
        with self.transaction() as conn:
            found = conn.execute(ANNOTATIONS_SQL, (run_id,)).fetchone()
            if found is None:
                raise RunNotFoundError(f"no run {run_id!r} in {self.path}")
            tags = [tag for tag in json.loads(found[0] or "[]") if tag not in remove]
            tags += [tag for tag in dict.fromkeys(add) if tag not in tags]
            note = (found[1] or "") if note is None else note
            conn.execute("UPDATE runs SET extra = json_set(extra, '$.tags', json(?), '$.note', ?)"
                         " WHERE run_id = ?", (json.dumps(tags), note, run_id))
        return {"tags": tags, "note": note}

    def insert_rows(self, rows: list[dict[str, Any]]) -> None:
        """Add rows (from :func:`to_row`) in one transaction, numbered after the last; ids
        already present are left as they are."""
        if not rows:
            return
        names = list(rows[0])
        with self.transaction() as conn:
            start = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM runs").fetchone()[0]
            conn.executemany(
                f"INSERT OR IGNORE INTO runs (seq, {', '.join(names)}) "
                f"VALUES (?, {', '.join('?' for _ in names)})",
                [(start + n, *(row[name] for name in names)) for n, row in enumerate(rows)])

    def load(self, where: str = "", args: tuple | list = (), order: str = "",
             limit: int | None = None) -> list[dict]:
        sql = f"SELECT * FROM runs {where} ORDER BY {order or ''}timestamp DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {check_limit(limit)}"
        return [from_row(row, self.output_dir) for row in self.query(sql, args)]

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


GONE = "interrupted: the process running it (pid {pid} on {host}) is gone"


def reap_stale(conn: sqlite3.Connection) -> None:
    """Mark ``interrupted`` every run and sweep left ``running`` (or a run left ``queued``) by a
    process that no longer
    exists (killed with -9, a crash, a reboot). Record files keep saying ``running``; the same
    rule applies when ``runs rebuild`` reads them (:func:`settled_status`)."""
    for row in conn.execute("SELECT run_id, status, extra FROM runs "
                            "WHERE status IN ('running', 'queued')"):
        owner = json.loads(row["extra"]).get("owner")
        if not _process.is_alive(owner):
            conn.execute("UPDATE runs SET status = 'interrupted', extra = json_set(extra, "
                         "'$.error', ?) WHERE run_id = ? AND status = ?",
                         (GONE.format(**owner), row["run_id"], row["status"]))
    for row in conn.execute("SELECT sweep_id, info FROM sweeps WHERE status = 'running'"):
        owner = json.loads(row["info"]).get("owner")
        if not _process.is_alive(owner):
            conn.execute("UPDATE sweeps SET status = 'interrupted' WHERE sweep_id = ? AND "
                         "status = 'running'", (row["sweep_id"],))


def settled_status(record: dict) -> dict:
    """``record`` with status ``interrupted`` when it says ``running`` but its process is gone
    (the rule :func:`reap_stale` applies to rows, for records read from files)."""
    owner = record.get("owner")
    if record.get("status") in ("running", "queued") and not _process.is_alive(owner):
        return {**record, "status": "interrupted",
                "error": record.get("error") or GONE.format(**owner)}
    return record
