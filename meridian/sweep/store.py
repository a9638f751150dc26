"""Sweeps in the registry: one ``sweeps`` row (id, strategy, grid, metric, timing) and one
``sweep_results`` row per combination (parameters and metrics, no curves)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from meridian.engine.metrics import METRIC_NAMES
from meridian.exceptions import RegistryError, RunNotFoundError
from meridian.storage import MIN_PREFIX, Registry, normalize_timestamp

LOWER_IS_BETTER = frozenset({"max_drawdown_duration", "volatility"})


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def save_sweep(info: dict[str, Any], combinations: list[dict], tables: list[np.ndarray],
               errors: list[str | None], done: np.ndarray, output_dir=None) -> None:
    """Write (or replace) a sweep and the rows of its finished combinations, in one transaction.

    ``tables[0]`` holds the metrics (combinations × METRIC_NAMES), ``tables[1]`` the
    out-of-sample ones when the sweep was split."""
    registry = Registry(output_dir)
    columns = ["sweep_id", "idx", "params", "error", *METRIC_NAMES,
               *(f"oos_{n}" for n in METRIC_NAMES)]
    oos = tables[1] if len(tables) > 1 else None
    nothing = [None] * len(METRIC_NAMES)

    def rows():  # generated one at a time: 100,000 rows never sit in memory as lists
        for index in np.flatnonzero(done):
            metrics = [_number(v) for v in tables[0][index]]
            outside = [_number(v) for v in oos[index]] if oos is not None else nothing
            yield [info["sweep_id"], int(index), json.dumps(combinations[index]),
                   errors[index], *metrics, *outside]

    head = {key: info[key] for key in ("sweep_id", "strategy_name", "status", "metric",
                                       "combinations", "completed", "duration")}
    extra = {k: v for k, v in info.items() if k not in head and k != "timestamp"}
    with registry.transaction() as conn:
        conn.execute("DELETE FROM sweep_results WHERE sweep_id = ?", (info["sweep_id"],))
        conn.execute(
            "INSERT OR REPLACE INTO sweeps (sweep_id, timestamp, strategy_name, status, metric, "
            "combinations, completed, duration, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (head["sweep_id"], normalize_timestamp(info["timestamp"]), head["strategy_name"],
             head["status"], head["metric"], head["combinations"], head["completed"],
             head["duration"], json.dumps(extra)),
        )
        conn.executemany(
            f"INSERT INTO sweep_results ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})", rows())


def resolve_sweep_id(prefix: str, output_dir=None) -> str:
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


def load_sweep(sweep_id: str, output_dir=None) -> dict:
    """A sweep's record: id, timestamp, strategy, status, metric, counts, timing, grid, …"""
    registry = Registry(output_dir)
    (row,) = registry.query("SELECT * FROM sweeps WHERE sweep_id = ?",
                            (resolve_sweep_id(sweep_id, output_dir),))
    record = dict(row)
    record.update(json.loads(record.pop("info")))
    return record


def list_sweeps(output_dir=None) -> list[dict]:
    """Every sweep, newest first."""
    registry = Registry(output_dir)
    rows = registry.query("SELECT sweep_id FROM sweeps ORDER BY timestamp DESC")
    return [load_sweep(row["sweep_id"], output_dir) for row in rows]


def load_sweep_rows(sweep_id: str, sort: str | None = None, limit: int | None = None,
                    output_dir=None) -> list[dict]:
    """Combinations of a sweep, best first by ``sort`` (default: the sweep's metric)."""
    sweep = load_sweep(sweep_id, output_dir)
    sort = sort or sweep["metric"]
    if sort not in METRIC_NAMES:
        raise RegistryError(f"cannot sort by {sort!r}; metrics: {', '.join(METRIC_NAMES)}")
    direction = "ASC" if sort in LOWER_IS_BETTER else "DESC"
    sql = (f"SELECT * FROM sweep_results WHERE sweep_id = ? "
           f"ORDER BY {sort} IS NULL, {sort} {direction}, idx")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = Registry(output_dir).query(sql, (sweep["sweep_id"],))
    return [{
        "index": row["idx"], "params": json.loads(row["params"]), "error": row["error"],
        "metrics": {n: row[n] for n in METRIC_NAMES},
        "oos_metrics": ({n: row[f"oos_{n}"] for n in METRIC_NAMES}
                        if any(row[f"oos_{n}"] is not None for n in METRIC_NAMES) else None),
    } for row in rows]
