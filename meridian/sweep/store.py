"""A sweep's combinations on disk: ``sweeps/<id>/results/part-*.parquet``, appended as they finish.

Each part holds finished combinations: ``idx`` (the combination's index in the grid), the grid
parameters, ``error`` and one float64 column per metric (``oos_<metric>`` for out-of-sample
values). Parts are written whole, atomically, every few seconds while a sweep runs, so a sweep
stopped in any way keeps what it finished; ``--resume`` reads which indices are done. Columns
are looked up by name and a missing one reads as NaN, so adding a metric never breaks an
existing sweep. The header (``sweep.json``) and the registry row are
:mod:`meridian.registry.sweeps`'.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from meridian._files import file_mode
from meridian.engine.metrics import METRIC_NAMES, metric_info
from meridian.exceptions import RegistryError
from meridian.record import clean_json
from meridian.registry.sweeps import load_sweep, results_dir
from meridian.sweep.grid import Grid

PathLike = str | os.PathLike[str]
OOS_PREFIX = "oos_"


class ResultWriter:
    """Buffers finished combinations and writes them as one Parquet part every
    ``flush_seconds`` (or ``flush_rows``), and on :meth:`flush` — so at most a few seconds of
    work is ever unwritten, and a 10-million-row sweep is a few hundred files, not millions."""

    def __init__(self, out: Path, sweep_id: str, grid: Grid, flush_seconds: float = 3.0,
                 flush_rows: int = 100_000) -> None:
        self.folder = results_dir(out, sweep_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.grid = grid
        self.flush_seconds, self.flush_rows = flush_seconds, flush_rows
        self.pending: list[tuple] = []
        self.returns: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_rows = 0
        self.last_flush = time.monotonic()
        self.number = len(list(self.folder.glob("part-*.parquet")))

    def add(self, indices: np.ndarray, table: np.ndarray, errors: list[str | None],
            outside: np.ndarray | None = None, returns: np.ndarray | None = None,
            returns_indices: np.ndarray | None = None) -> None:
        """Finished combinations: their metrics (and out-of-sample ones of a split), and the
        bar returns of those in the sample kept for the overfitting statistics."""
        self.pending.append((np.asarray(indices, dtype=np.int64), table, errors, outside))
        if returns is not None and returns_indices is not None and len(returns_indices):
            self.returns.append((np.asarray(returns_indices, dtype=np.int64), returns))
        self.pending_rows += len(indices)
        if (self.pending_rows >= self.flush_rows
                or time.monotonic() - self.last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Write what is pending as one part (atomically: a temporary name, then a rename)."""
        self.last_flush = time.monotonic()
        if self.returns:
            indices = np.concatenate([r[0] for r in self.returns])
            matrix = np.concatenate([r[1] for r in self.returns], axis=1)
            self.returns = []
            target = self.folder / f"returns-{self.number:06d}.npz"
            temporary = self.folder / f".{target.name}.{os.getpid()}.tmp"
            with open(temporary, "wb") as stream:
                np.savez(stream, idx=indices, returns=matrix)
            os.chmod(temporary, file_mode())
            os.replace(temporary, target)
        if not self.pending:
            return
        indices = np.concatenate([p[0] for p in self.pending])
        tables = [np.concatenate([p[1] for p in self.pending])]
        if self.pending[0][3] is not None:
            tables.append(np.concatenate([p[3] for p in self.pending]))
        errors = [e for p in self.pending for e in p[2]]
        self.pending, self.pending_rows = [], 0
        write_part(self.folder, self.number, self.grid, indices, tables, errors)
        self.number += 1


def write_part(folder: Path, number: int, grid: Grid, indices: np.ndarray,
               tables: list[np.ndarray], errors: list[str | None]) -> Path:
    """One Parquet file of rows: ``idx``, the grid's parameters, ``error``, the metrics, and
    ``oos_<metric>`` columns when a second (out-of-sample) table is given."""
    columns: dict[str, Any] = {"idx": pa.array(indices, pa.int64())}
    for (name, values), positions in zip(grid.axes.items(), grid.positions(indices),
                                         strict=True):
        columns[name] = pa.array([values[p] for p in positions])
    columns["error"] = pa.array(errors, pa.string())
    for table, prefix in zip(tables, ("", OOS_PREFIX), strict=False):
        for j, name in enumerate(METRIC_NAMES):
            columns[prefix + name] = pa.array(table[:, j], pa.float64())
    target = folder / f"part-{number:06d}.parquet"
    temporary = folder / f".{target.name}.{os.getpid()}.tmp"
    pq.write_table(pa.table(columns), temporary, compression="zstd")
    os.chmod(temporary, file_mode())
    os.replace(temporary, target)
    return target


def read_returns(out: Path, sweep_id: str) -> np.ndarray | None:
    """The kept bar returns (bars × sampled combinations, in index order), or None."""
    parts = sorted(results_dir(out, sweep_id).glob("returns-*.npz"))
    if not parts:
        return None
    indices, matrices = [], []
    for part in parts:
        with np.load(part) as loaded:
            indices.append(loaded["idx"])
            matrices.append(loaded["returns"])
    order = np.argsort(np.concatenate(indices), kind="stable")
    return np.concatenate(matrices, axis=1)[:, order]


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet"))


def read_results(out: Path, sweep_id: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Every finished combination as a frame (``columns`` to read fewer; ``idx`` always).
    Metric columns missing from older parts (a metric added since) come back as NaN."""
    folder = results_dir(out, sweep_id)
    frames = []
    for part in _parts(folder):
        available = pq.ParquetFile(part).schema_arrow.names
        wanted = available if columns is None else [c for c in ["idx", *columns]
                                                    if c in available]
        frames.append(pq.read_table(part, columns=list(dict.fromkeys(wanted))).to_pandas())
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"idx": []})
    for name in columns or [*METRIC_NAMES, "error"]:
        if name not in frame.columns:
            frame[name] = None if name == "error" else np.nan
    return frame.drop_duplicates("idx", keep="last")


def read_rows(out: Path, sweep_id: str, indices: list[int] | np.ndarray) -> pd.DataFrame:
    """The full rows of the combinations ``indices`` (in that order), reading one part at a
    time: memory stays bounded by a part, whatever the sweep's size."""
    wanted = np.asarray(indices, dtype=np.int64)
    found = []
    for part in _parts(results_dir(out, sweep_id)):
        ids = pq.read_table(part, columns=["idx"])["idx"].to_numpy()
        hit = np.flatnonzero(np.isin(ids, wanted))
        if len(hit):
            found.append(pq.read_table(part).take(hit).to_pandas())
    rows = pd.concat(found, ignore_index=True).drop_duplicates("idx", keep="last") if found \
        else pd.DataFrame({"idx": pd.Series([], dtype=np.int64)})
    for name in [*METRIC_NAMES, "error"]:
        if name not in rows.columns:
            rows[name] = None if name == "error" else np.nan
    return rows.set_index("idx").reindex(wanted).reset_index()


def rank_order(values: np.ndarray, metric: str) -> np.ndarray:
    """Positions best first by the metrics table's direction; NaN (undefined, failed) last."""
    key = np.asarray(values, dtype=float)
    key = key if metric_info(metric).better == "lower" else -key
    return np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")


def load_sweep_rows(sweep_id: str, sort: str | None = None, limit: int | None = None,
                    output_dir: PathLike | None = None) -> list[dict]:
    """Combinations of a sweep, best first by ``sort`` (default: the sweep's metric)."""
    from meridian import project

    sweep = load_sweep(sweep_id, output_dir)
    sort = sort or sweep["metric"]
    if sort not in METRIC_NAMES:
        raise RegistryError(f"cannot sort by {sort!r}; metrics: {', '.join(METRIC_NAMES)}")
    out = project.output_dir(output_dir)
    ranked = read_results(out, sweep["sweep_id"], [sort])  # two columns, not every metric
    order = rank_order(ranked[sort].to_numpy(dtype=float), sort)
    if limit is not None:
        order = order[:int(limit)]
    frame = read_rows(out, sweep["sweep_id"], ranked["idx"].to_numpy()[order])
    grid = list(sweep.get("grid") or {})
    oos_columns = [OOS_PREFIX + n for n in METRIC_NAMES]
    rows = []
    for position in range(len(frame)):
        row = frame.iloc[position]
        outside = {n: _value(row.get(OOS_PREFIX + n)) for n in METRIC_NAMES}
        rows.append({
            "index": int(row["idx"]),
            "params": {**(sweep.get("defaults") or {}),
                       **{name: clean_json(row[name], name) for name in grid if name in row}},
            "error": row["error"] if isinstance(row["error"], str) else None,
            "metrics": {n: _value(row[n]) for n in METRIC_NAMES},
            "oos_metrics": outside if any(c in frame.columns for c in oos_columns)
            and any(v is not None for v in outside.values()) else None,
        })
    return rows


def _value(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


