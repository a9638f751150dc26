"""The runs page: ``outputs/index.html`` (static, offline) and the page ``meridian ui`` serves.

One page source (``static/dashboard.{html,css,js}``) shows runs from one of two sources:

* **static** — ``index.html`` is a small shell; the runs live in chunk files beside it,
  ``dashboard/rows-NNNNN.js`` (compact table rows, loaded at start) and
  ``dashboard/runs-NNNNN.js`` (every parameter and metric, the equity curve; loaded when a run
  is opened or compared). A chunk holds the runs whose registry ``seq`` falls in one block of
  :data:`CHUNK` numbers, so a new run rewrites one chunk and the shell — never the whole page:
  ``meridian run`` costs the same with 10 runs or 100,000.
* **live** — the same page asks :mod:`meridian.dashboard.app` for pages of rows, sorted and
  filtered in SQLite.

Both get rows from :func:`rows_payload` and run details from :func:`details_payload`, so a row
looks the same whichever way it arrives. Python formats every displayed value (with
:func:`meridian.engine.metrics.format_metric`, the only metric formatter); the page only
displays them. Rows are columnar with repeated strings stored once (:func:`_coded`): about
300 bytes a run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from meridian import project
from meridian._files import locked, remove_stale_temps, write_atomic
from meridian.engine.metrics import KEY_METRICS, METRIC_NAMES, format_metric, metric_info
from meridian.pages import (
    PLOTLY_DEFERRED,
    document,
    json_for_script,
    plotly_src,
    relative_href,
)
from meridian.record import data_identity, data_label, kept_positions
from meridian.registry import curves
from meridian.storage import Registry
from meridian.viz import comparison_chart, format_param_value, format_params, ordered_metric_names

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
LOCK_NAME = ".dashboard.lock"
CHUNK = 1_000
"""Runs per chunk file, by registry ``seq`` (a run keeps its chunk for life)."""
CHUNK_DIR = "dashboard"
PARALLEL_FROM = 8
"""From this many chunks to write, :func:`build_dashboard` uses a process per core."""
CURVE_POINTS = 120
"""Points per equity curve in a comparison (the registry keeps 250, reports keep all)."""
SCALE = 10_000
"""Equity is stored as round(equity / first equity × SCALE): 4 decimals of growth."""
ERROR_CHARS = 2_000
ROW_ERROR_CHARS = 300
"""A row carries the start of its error; the details carry up to :data:`ERROR_CHARS`."""

COLUMNS_SQL = """run_id, seq, timestamp, strategy_name, status, kind, name, duration,
       trades_count, params, metrics, json_extract(extra, '$.error') AS error,
       json_extract(extra, '$.report_path') AS report, json_extract(extra, '$.tags') AS tags,
       json_extract(extra, '$.note') AS note, json_extract(extra, '$.changed') AS changed,
       json_extract(extra, '$.universe.name') AS universe, json_extract(extra, '$.data') AS data"""


def dashboard_path(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the dashboard of an output directory lives: ``<output dir>/index.html``."""
    return project.dashboard_path(project.output_dir(output_dir))


def metric_label(name: str) -> str:
    return metric_info(name).label


def metric_rank(name: str) -> str | None:
    """"higher" or "lower" (which value is best in a comparison), None when neither is."""
    return metric_info(name).better


# ------------------------------------------------------------------------------ rows


def _coded(values: Sequence[Any]) -> dict[str, list]:
    """A column with each distinct value stored once: ``{"v": distinct, "i": positions}``."""
    seen: dict[Any, int] = {}
    positions = [seen.setdefault(value, len(seen)) for value in values]
    return {"v": list(seen), "i": positions}


def _round(value: float | None) -> float | None:
    """Six significant digits: enough to sort and filter by, a third of the text."""
    return None if value is None else float(f"{value:.6g}")


def _report_href(report: str | None, run_id: str, out: Path) -> str | int | None:
    """1 for the usual ``runs/<id>/report.html``, another URL relative to the output folder
    (where ``index.html`` is), or None when the file is missing."""
    if not report:
        return None
    if report == f"runs/{run_id}/report.html":  # stored relative to the folder: the usual case
        return 1 if os.path.isfile(os.path.join(out, report)) else None
    path = project.contained(report if os.path.isabs(report) else out / report, [out])
    return relative_href(path, out) if path is not None and path.is_file() else None


def _json_object(text: str | None) -> dict:
    """A JSON object from the registry, {} for NULL or anything else (an old record)."""
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else {}


def rows_payload(rows: Sequence[Any], out: Path) -> dict:
    """Table rows (sqlite rows of :data:`COLUMNS_SQL`) in columns; see the module doc."""
    params = [json.loads(row["params"] or "{}") for row in rows]
    metrics = [json.loads(row["metrics"] or "{}") for row in rows]
    data = [_json_object(row["data"]) for row in rows]
    names: list[str] = []
    for one in params:
        names.extend(name for name in one if name not in names)
    return {
        "id": [row["run_id"] for row in rows],
        "seq": [row["seq"] for row in rows],
        "time": [row["timestamp"][:19] for row in rows],
        "strategy": _coded([row["strategy_name"] for row in rows]),
        "name": _coded([row["name"] for row in rows]),
        "kind": _coded([row["kind"] for row in rows]),
        "status": _coded([row["status"] for row in rows]),
        "params_text": _coded([format_params(one, json.loads(row["changed"])
                                             if row["changed"] else None)
                               for row, one in zip(rows, params, strict=True)]),
        "params": {name: _coded([format_param_value(one[name]) if name in one else None
                            for one in params]) for name in names},
        "tags": _coded([row["tags"] if row["tags"] and row["tags"] != "[]" else None
                      for row in rows]),
        "note": _coded([(row["note"] or "")[:200] or None for row in rows]),
        "universe": _coded([row["universe"] for row in rows]),
        "data": _coded([data_label(one) for one in data]),
        "data_id": _coded([data_identity(one) for one in data]),
        "error": [None if row["error"] is None else str(row["error"])[:ROW_ERROR_CHARS]
              for row in rows],
        "metrics": {name: [_round(one.get(name)) for one in metrics] for name in KEY_METRICS},
        "formatted": {name: _coded([format_metric(name, one.get(name)) for one in metrics])
              for name in KEY_METRICS},
        "trades": [row["trades_count"] for row in rows],
        "duration": [None if row["duration"] is None else round(row["duration"], 2)
                     for row in rows],
        "report": [_report_href(row["report"], row["run_id"], out) for row in rows],
    }


# ------------------------------------------------------------------------------ details


class _Axes:
    """Date axes of a set of curves, each stored once and shared by the runs that have it."""

    def __init__(self) -> None:
        self.axes: list[list[str]] = []
        self._seen: dict[bytes, tuple[int, np.ndarray | None]] = {}

    def add(self, key: bytes, axis, length: int) -> tuple[int, np.ndarray | None]:
        """(axis number, positions kept or None for all) of a curve's axis."""
        found = self._seen.get(key)
        if found is None:
            keep = kept_positions(length, CURVE_POINTS)
            index = axis()
            self.axes.append(index if keep is None else [index[i] for i in keep])
            found = (len(self.axes) - 1, keep)
            self._seen[key] = found
        return found


def _growth(values: np.ndarray, keep: np.ndarray | None) -> list[int | None]:
    """Growth of 1.0 × SCALE as integers (None where the curve has a gap); [] when the
    curve is unusable (empty, all zero or undefined)."""
    picked = values if keep is None else values[keep]
    usable = picked[np.isfinite(picked) & (picked != 0)]
    if usable.size == 0:
        return []
    scaled = picked / usable[0] * SCALE
    finite = np.isfinite(scaled)
    ints = np.rint(np.where(finite, scaled, 0)).astype(np.int64).tolist()
    return ints if finite.all() else [v if ok else None for v, ok in zip(ints, finite, strict=True)]


def details_payload(rows: Sequence[Any]) -> dict[str, Any]:
    """Everything the details panel and a comparison show of each run (sqlite rows of
    :data:`COLUMNS_SQL` plus ``equity``): ``{"axes": [...], "runs": {id: details}}``."""
    axes = _Axes()
    runs = {}
    for row in rows:
        params = json.loads(row["params"] or "{}")
        metrics = json.loads(row["metrics"] or "{}")
        names = ordered_metric_names(metrics)
        key, values, axis = curves.arrays(row["equity"])
        curve: dict[str, Any] = {}
        if len(values):
            number, keep = axes.add(key, axis, len(values))
            growth = _growth(values, keep)
            if growth:
                curve = {"axis": number, "growth": growth}
        runs[row["run_id"]] = {
            "params": {str(k): format_param_value(v) for k, v in params.items()},
            "metric_names": names,
            "metric_values": [metrics[name] for name in names],
            "formatted": [format_metric(name, metrics[name]) for name in names],
            "error": None if row["error"] is None else str(row["error"])[:ERROR_CHARS],
            "note": row["note"] or "",
            **curve,
        }
    return {"axes": axes.axes, "runs": runs}


# ------------------------------------------------------------------------------ the shell


@cache
def _chart_layout() -> dict:
    """The comparison chart's layout (template, axes, legend), taken from viz so the in-page
    chart and ``meridian runs compare`` look the same."""
    return json.loads(comparison_chart([]).to_json())["layout"]


def sweeps_payload(registry: Registry, out: Path) -> list[dict]:
    """The newest 200 sweeps: what ran, how it ended, its best value, its report."""
    found = []
    for row in registry.query("SELECT sweep_id, timestamp, strategy_name, status, metric, "
                              "combinations, completed, info FROM sweeps "
                              "ORDER BY timestamp DESC LIMIT 200"):
        info = json.loads(row["info"] or "{}")
        best = (info.get("best") or [{}])[0]
        report = project.sweep_dir(out, row["sweep_id"]) / "report.html"
        found.append({
            "id": row["sweep_id"], "time": row["timestamp"], "strategy": row["strategy_name"],
            "status": row["status"], "metric": row["metric"],
            "combinations": f"{row['completed']:,} of {row['combinations']:,}",
            "grid": ", ".join(f"{k} × {len(v)}" for k, v in (info.get("grid") or {}).items()),
            "best": format_metric(row["metric"], (best.get("metrics") or {}).get(row["metric"])),
            "best_params": format_params({k: v for k, v in (best.get("params") or {}).items()
                                 if k in (info.get("grid") or {})}),
            "report": relative_href(report, out) if report.is_file() else None,
        })
    return found


def shell_data(out: Path, *, live: bool = False, chunks: Iterable[int] = (),
               extra: dict | None = None) -> dict[str, Any]:
    """The page's own JSON: how to read the metrics, where the runs come from. Links are
    relative to the output folder; the live page finds its files under ``files/``."""
    page = project.dashboard_path(out)
    return {
        "version": 2,
        "source": "live" if live else "static",
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "output_dir": str(out),
        "scale": SCALE,
        "metrics": [{"key": name, "label": metric_label(name), "kind": metric_info(name).kind,
                     "rank": metric_rank(name)} for name in METRIC_NAMES],
        "table_metrics": list(KEY_METRICS),
        "layout": _chart_layout(),
        "files": "files/" if live else "",
        "plotly_src": ("files/" if live else "") + plotly_src(page, out),
        "chunks": sorted(chunks),
        "chunk_dir": CHUNK_DIR,
        "chunk_size": CHUNK,
        "sweeps": sweeps_payload(Registry(out), out),
        **(extra or {}),
    }


@cache
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any], *, live: bool = False) -> str:
    """The complete page for :func:`shell_data`'s output."""
    return document("Meridian runs", _asset("dashboard.html"),
                    [_asset("dashboard.js"), PLOTLY_DEFERRED], css=_asset("dashboard.css"),
                    data=data, plotly=data.get("plotly_src"), connect=live)


# ------------------------------------------------------------------------------ writing


def _chunk_file(out: Path, kind: str, number: int) -> Path:
    return out / CHUNK_DIR / f"{kind}-{number:05d}.js"


_CHUNK_NAME = re.compile(r"(rows|runs)-(\d{5})\.js")


def _write_chunk(registry: Registry, out: Path, number: int) -> bool:
    """Rewrite chunk ``number`` from the registry; False (and no files) when it is empty."""
    rows = registry.query(f"SELECT {COLUMNS_SQL}, equity FROM runs WHERE seq >= ? AND seq < ? "
                          "ORDER BY seq", (number * CHUNK, (number + 1) * CHUNK))
    if not rows:
        for kind in ("rows", "runs"):
            _chunk_file(out, kind, number).unlink(missing_ok=True)
        return False
    for kind, payload in (("rows", rows_payload(rows, out)), ("runs", details_payload(rows))):
        write_atomic(_chunk_file(out, kind, number),
                     f'window.meridianChunk("{kind}",{number},{json_for_script(payload)});\n')
    return True


def _write_chunks(out: Path, numbers: list[int]) -> set[int]:
    """Write many chunks, on every core when there are many (a 100,000-run page is 100
    chunks); the ones that had rows."""
    if len(numbers) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        registry = Registry(out)
        return {number for number in numbers if _write_chunk(registry, out, number)}
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        written = pool.map(_write_chunk_in, [(out, n) for n in numbers],
                           chunksize=max(1, len(numbers) // (4 * (os.cpu_count() or 1))))
        return {number for number, ok in zip(numbers, written, strict=True) if ok}


def _write_chunk_in(job: tuple[Path, int]) -> bool:
    out, number = job
    return _write_chunk(Registry(out), out, number)


def _existing_chunks(out: Path) -> set[int]:
    folder = out / CHUNK_DIR
    if not folder.is_dir():
        return set()
    return {int(m[2]) for name in os.listdir(folder)
            if (m := _CHUNK_NAME.fullmatch(name)) and m[1] == "rows"}


def _write_shell(out: Path, chunks: set[int]) -> Path:
    return write_atomic(project.dashboard_path(out),
                        render_page(shell_data(out, chunks=chunks)))


def build_dashboard(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write ``<output dir>/index.html`` and every chunk from the registry (atomically) and
    return the page's path.

    Concurrent builds in one output directory take turns (a lock file), so whichever runs
    last reads the newest registry and no run finishing at the same time goes missing.
    """
    out = project.output_dir(output_dir)
    registry = Registry(out)
    with locked(out / LOCK_NAME):
        remove_stale_temps(out)  # left by a writer killed mid-write
        wanted = {row[0] for row in registry.query(
            f"SELECT DISTINCT seq / {CHUNK} FROM runs ORDER BY 1")}
        for number in _existing_chunks(out) - wanted:
            for kind in ("rows", "runs"):
                _chunk_file(out, kind, number).unlink(missing_ok=True)
        chunks = _write_chunks(out, sorted(wanted))
        return _write_shell(out, chunks)


def chunks_of(run_ids: Iterable[str], output_dir: str | os.PathLike[str] | None = None
              ) -> set[int]:
    """The chunks holding ``run_ids`` (call before deleting runs, to refresh their chunks)."""
    ids = list(run_ids)
    registry = Registry(output_dir)
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        found |= {row[0] for row in registry.query(
            f"SELECT DISTINCT seq / {CHUNK} FROM runs WHERE run_id IN "
            f"({', '.join('?' for _ in part)})", part)}
    return found


def update_dashboard(output_dir: str | os.PathLike[str] | None = None,
                     run_ids: Iterable[str] = (), chunks: Iterable[int] = ()) -> Path:
    """Rewrite only the chunks of ``run_ids`` (and ``chunks``) and the shell: what a new,
    changed or deleted run needs. Without a page yet, the whole page is built."""
    out = project.output_dir(output_dir)
    if not project.dashboard_path(out).is_file():
        return build_dashboard(out)
    with locked(out / LOCK_NAME):
        remove_stale_temps(out)
        present = _existing_chunks(out)
        numbers = sorted(set(chunks) | chunks_of(run_ids, out))
        written = _write_chunks(out, numbers)
        present = (present - set(numbers)) | written
        return _write_shell(out, present)


def refresh_dashboard(output_dir: str | os.PathLike[str] | None = None,
                      run_ids: Iterable[str] | None = None,
                      chunks: Iterable[int] = ()) -> Path | None:
    """:func:`update_dashboard` for ``run_ids``/``chunks`` (or :func:`build_dashboard` when
    both are omitted), but a failure is logged and returns None instead of raising: for
    callers (a run, a delete) whose own work must not fail because of the page."""
    try:
        if run_ids is None and not chunks:
            return build_dashboard(output_dir)
        return update_dashboard(output_dir, run_ids or (), chunks)
    except Exception as error:  # noqa: BLE001 - the dashboard is a view; never fail the caller
        log.warning("dashboard not updated: %s: %s", type(error).__name__, error)
        return None
