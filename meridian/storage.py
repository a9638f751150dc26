"""The run registry's public API: save, load, search, delete, export — the seed's
``storage`` module, over :mod:`meridian.registry`.

Every run is a plain dict of one shape, :meth:`meridian.record.RunRecord.to_dict`'s: a value a
run does not have is None (or empty), never a missing key. Saving writes the run's file
``runs/<run_id>/run.json`` (the source of truth) and then its registry row (the index);
``meridian runs rebuild`` (:func:`rebuild_registry`) recreates the index from the files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from meridian._files import locked, write_atomic
from meridian.engine.metrics import METRIC_NAMES, metric_info
from meridian.exceptions import ParameterError, RegistryError, RunNotFoundError
from meridian.registry.backup import backup_registry, keep_deleted_run
from meridian.registry.db import ANNOTATIONS_SQL, Registry
from meridian.registry.query import json_path, param_clause, tag_clause, text_clauses
from meridian.registry.rebuild import rebuild_registry, record_from_notebook
from meridian.registry.records import (
    MIN_PREFIX,
    STATUSES,
    downsample_equity,
    normalize_timestamp,
    record_file,
    write_record_file,
)
from meridian.registry.transfer import Imported, import_runs

__all__ = [
    "MIN_PREFIX", "SORT_COLUMNS", "STATUSES", "Imported", "Registry",
    "backup_registry", "count_runs", "delete_run", "delete_runs", "downsample_equity",
    "export_runs", "get_registry_stats", "import_runs",
    "load_all_runs", "load_run_by_id", "normalize_timestamp", "rebuild_registry",
    "record_from_notebook", "resolve_run_id", "save_run", "search_runs", "tag_run",
]

PathLike = str | os.PathLike[str]


def save_run(record: Mapping[str, Any], output_dir: PathLike | None = None) -> str:
    """Insert ``record`` (or replace the run with the same ``run_id``) in the registry and in
    its file ``runs/<run_id>/run.json``; return the run id.

    A replaced run keeps its original insertion position, so re-saving a ``running`` run as
    ``success`` does not reorder runs that share its timestamp.
    """
    if not isinstance(record, Mapping):
        raise RegistryError(f"a run record must be a dict, got {type(record).__name__}")
    registry = Registry(output_dir)
    with _run_lock(registry.output_dir, record):
        annotations = registry.save(record)  # validates first: a bad record writes nothing
        write_record_file({**record, **annotations}, registry.output_dir)
    return str(record["run_id"])


def _run_lock(out: Path, record: Mapping[str, Any]):
    """The lock under which a run's row and ``run.json`` change together (a save, a tag):
    changes from several processes land one after the other, none lost."""
    import contextlib

    from meridian import project

    try:
        run_id = project.check_run_id(str(record.get("run_id") or ""))
    except RegistryError:  # not a record at all: Registry.save says what is wrong with it
        return contextlib.nullcontext()
    return locked(project.run_dir(out, run_id) / ".lock")


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
    """Delete one run (see :func:`delete_runs`); return the deleted record."""
    return delete_runs([run_id], output_dir)[0]


def delete_runs(run_ids: Iterable[str], output_dir: PathLike | None = None) -> list[dict]:
    """Delete runs: their rows, and their folders moved to ``backups/deleted/<run_id>/``
    after one registry snapshot, so that a deleted run can be restored whole (see
    :mod:`meridian.registry.backup`). Every id is resolved before anything is deleted, so one
    unknown id deletes nothing. Returns the deleted records (a run named twice once)."""
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
    for run_id, record in records.items():
        keep_deleted_run(registry.output_dir, run_id, record)
    return list(records.values())


def get_registry_stats(output_dir: PathLike | None = None) -> dict:
    """Totals, counts by status and by strategy, and the best run for each metric.

    ``best[metric]`` is ``{"run_id", "strategy_name", "value"}``: the best value by the metrics
    table's direction (the highest when a metric has none). Null values are ignored; on a tie
    the newest run wins.
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
                      or (value < current["value"] if metric_info(name).better == "lower"
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


def _check_metric(registry: Registry, name: str, what: str) -> None:
    if name in METRIC_NAMES:  # the table's names need no scan of every row
        return
    known = set(METRIC_NAMES) | set(registry.metric_names())
    if name not in known:
        raise RegistryError(f"unknown metric {name!r} in {what}; valid: {', '.join(sorted(known))}")


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterError(f"{what} must be a dict of name → value, got a "
                             f"{type(value).__name__}")
    return value


def metric_bound(value: Any, what: str) -> float:
    """A metric threshold as a finite float; text, NaN and infinities are one line (NaN
    would silently match nothing)."""
    try:
        bound = float(value)
    except (TypeError, ValueError):
        bound = math.nan
    if isinstance(value, bool) or not math.isfinite(bound):
        raise ParameterError(f"{what}={value!r} is not a finite number; give a threshold like "
                             "1.0")
    return bound


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
    tag: str | None = None,
    query: str | None = None,
) -> list[dict]:
    """Runs matching every given filter, newest first unless ``sort`` says otherwise.

    ``since``/``until`` bound the timestamp (both inclusive); ``params`` match by exact equality
    of each value; ``metric_min``/``metric_max`` are inclusive bounds, and a run whose metric is
    null never matches them. ``sort`` is a metric name (highest first, nulls last) or one of
    :data:`SORT_COLUMNS`; ``tag`` keeps runs carrying that tag; ``query`` is the runs page's
    filter text (``"fld_offset=15 sharpe_ratio>1 tag:keeper fld"``, see
    :mod:`meridian.registry.query`). The filters run in SQL through ``json_extract``.
    """
    registry = Registry(output_dir)
    clauses, args = _filters(strategy=strategy, status=status, tag=tag)
    if query:
        words, word_args = text_clauses(query)
        clauses += words
        args += word_args
    if since is not None:
        clauses.append("timestamp >= ?")
        args.append(normalize_timestamp(since))
    if until is not None:
        clauses.append("timestamp <= ?")
        args.append(normalize_timestamp(until))
    for key, value in _mapping(params, "params").items():
        clause, clause_args = param_clause(str(key), value)
        clauses.append(clause)
        args.extend(clause_args)
    for bounds, op, what in ((metric_min, ">=", "metric_min"), (metric_max, "<=", "metric_max")):
        for name, bound in _mapping(bounds, what).items():
            _check_metric(registry, name, what)
            clauses.append(f"json_extract(metrics, ?) {op} ?")
            args.extend([json_path(name, "metric"), metric_bound(bound, f"{what} {name}")])
    order = ""
    if sort is not None:
        order, order_args = _sort_clause(registry, sort)
        args.extend(order_args)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return registry.load(where, args, order=order, limit=limit)


def _filters(strategy: str | None, status: str | None, tag: str | None
             ) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if tag is not None:
        clause, clause_args = tag_clause(tag)
        clauses.append(clause)
        args += clause_args
    for column, value in (("strategy_name", strategy), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return clauses, args


def _sort_clause(registry: Registry, sort: str) -> tuple[str, list]:
    """An ``ORDER BY`` prefix (nulls last) for a column or metric name."""
    if sort in SORT_COLUMNS:
        column = SORT_COLUMNS[sort].split()[0]
        return f"({column} IS NULL), {SORT_COLUMNS[sort]}, ", []
    metrics = set(METRIC_NAMES) | (set() if sort in METRIC_NAMES else
                                   set(registry.metric_names()))
    if sort in metrics:
        return ("(json_extract(metrics, ?) IS NULL), json_extract(metrics, ?) DESC, ",
                [json_path(sort, "metric")] * 2)
    valid = ", ".join([*SORT_COLUMNS, *sorted(metrics)])
    raise RegistryError(f"cannot sort by {sort!r}; valid: {valid}")


def count_runs(strategy: str | None = None, status: str | None = None, tag: str | None = None,
               output_dir: PathLike | None = None) -> int:
    """How many runs match (the filters of :func:`search_runs` that ``runs list`` offers)."""
    clauses, args = _filters(strategy=strategy, status=status, tag=tag)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = Registry(output_dir).query(f"SELECT count(*) FROM runs {where}", args)
    return rows[0][0] if rows else 0


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
    return write_atomic(target, text + "\n").absolute()




MAX_TAG = 64
MAX_TAGS = 100
MAX_NOTE = 10_000
"""Longest tag, most tags a run has, longest note (characters): annotations, not storage."""


def tag_run(run_id: str, tags: Iterable[str] = (), note: str | None = None,
            output_dir: PathLike | None = None, remove: bool = False,
            untag: Iterable[str] = ()) -> dict:
    """Add (or with ``remove``, take away) ``tags``, take away ``untag`` and set ``note`` on a
    run; returns the updated record. Only those fields change — one SQL update of the row and
    of ``run.json``, never a rewrite of the whole record — so a run finishing, another process
    or another tab tagging at the same time loses nothing. Tags are words (no spaces or
    commas) of at most :data:`MAX_TAG` characters; a note at most :data:`MAX_NOTE`."""
    registry = Registry(output_dir)
    tags, untag = list(tags), list(untag)
    for tag in tags:
        if not tag or any(c.isspace() or c == "," for c in tag) or len(tag) > MAX_TAG:
            raise RegistryError(f"tag {tag[:MAX_TAG]!r}: a tag is one word of at most {MAX_TAG} "
                                "characters (no spaces or commas), e.g. keeper or idea-3")
    if note is not None and len(note) > MAX_NOTE:
        raise RegistryError(f"the note has {len(note):,} characters; at most {MAX_NOTE:,}")
    if remove:
        tags, untag = [], tags + untag
    full = registry.resolve(run_id)
    with _run_lock(registry.output_dir, {"run_id": full}):
        current = registry.query(ANNOTATIONS_SQL, (full,))
        count = len({*json.loads((current[0][0] if current else None) or "[]"), *tags}
                    - set(untag))
        if count > MAX_TAGS:
            raise RegistryError(f"a run has at most {MAX_TAGS} tags; this would make {count}")
        annotations = registry.annotate(full, tags, untag, note)
        path = record_file(registry.output_dir, full)
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                data = None  # a damaged file: the row keeps the change; rebuild says so
            if isinstance(data, dict):
                write_atomic(path, json.dumps({**data, **annotations}, ensure_ascii=False,
                                              allow_nan=False) + "\n")
    return load_run_by_id(full, output_dir=registry.output_dir)

