"""``outputs/index.html``: every run of the registry in one static, offline page.

The page is the registry's data as JSON plus a small vanilla-JS application
(``static/dashboard.js``): a sortable, filterable table of runs with links to their reports,
a details panel, and an in-page comparison of selected runs (overlaid equity curves drawn with
the layout of :func:`meridian.viz.comparison_chart`, metrics side by side).

Designed for 10,000+ runs: Python formats every displayed value once (with
:func:`meridian.engine.metrics.format_metric`, the only metric formatter), equity curves are
cut to :data:`EQUITY_POINTS` points stored as integers (growth of 1.0 × :data:`SCALE`) with the
date axes shared between runs that have the same one, and the browser renders rows a page at
a time.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from meridian import project
from meridian._files import remove_stale_temps, write_atomic
from meridian.engine.metrics import KEY_METRICS, METRIC_NAMES, format_metric, metric_info
from meridian.pages import PLOTLY_DEFERRED, document, locked, plotly_src, relative_href
from meridian.storage import Registry
from meridian.viz import comparison_chart, format_param_value, format_params

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
LOCK_NAME = ".dashboard.lock"
EQUITY_POINTS = 200
"""Points per equity curve in the page (the registry keeps up to 500; reports keep all)."""
SCALE = 10_000
"""Equity is stored as round(equity / first equity × SCALE): 4 decimals of growth."""
ERROR_CHARS = 2_000


def metric_rank(name: str) -> str | None:
    """"higher" or "lower" (which value is best in a comparison), None when neither is."""
    return metric_info(name).better


_QUERY = """
SELECT run_id, timestamp, strategy_name, status, kind, name, duration, trades_count, params,
       metrics, equity, json_extract(extra, '$.error') AS error,
       json_extract(extra, '$.report_path') AS report, json_extract(extra, '$.tags') AS tags,
       json_extract(extra, '$.note') AS note, json_extract(extra, '$.changed') AS changed
FROM runs ORDER BY timestamp DESC, seq DESC
"""


def dashboard_path(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the dashboard of an output directory lives: ``<output dir>/index.html``."""
    return project.dashboard_path(project.output_dir(output_dir))


def metric_label(name: str) -> str:
    return metric_info(name).label


_EQUITY_HEAD, _EQUITY_MIDDLE = '{"index":', ',"values":'


def _split_equity(text: str | None) -> tuple[str, str]:
    """The stored equity JSON's index and values as JSON texts, without parsing them.

    Parsing 500 floats per run is most of a 10,000-run build, and only EQUITY_POINTS of them
    are used: so the values are cut apart as text where the stored layout is the usual one
    (``{"index":[...],"values":[...]}``) and parsed properly otherwise."""
    if not text:
        return "[]", "[]"
    if (text.startswith(_EQUITY_HEAD) and text.endswith("]}")
            and text.count(_EQUITY_MIDDLE) == 1):
        index, values = text[len(_EQUITY_HEAD):-1].split(_EQUITY_MIDDLE)
        return index, values
    equity = json.loads(text)
    return json.dumps(equity.get("index") or []), json.dumps(equity.get("values") or [])


class _Axes:
    """Equity date axes, each stored once and shared by every run that has it."""

    def __init__(self) -> None:
        self.axes: list[list[str]] = []
        self._seen: dict[str, tuple[int, list[int] | None, int]] = {}

    def add(self, index_json: str) -> tuple[int, list[int] | None, int]:
        """(axis number or -1, positions kept or None for all, length) of an equity index
        given as JSON text."""
        found = self._seen.get(index_json)
        if found is None:
            index = json.loads(index_json)
            keep = None
            if len(index) > EQUITY_POINTS:
                keep = np.unique(np.linspace(0, len(index) - 1, EQUITY_POINTS).round()
                                 .astype(int)).tolist()
            found = (len(self.axes) if index else -1, keep, len(index))
            if index:
                self.axes.append(index if keep is None else [index[i] for i in keep])
            self._seen[index_json] = found
        return found


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # null
        return float("nan")


def _equity(values_json: str, keep: list[int] | None, length: int) -> list[int | None]:
    """Growth of 1.0 × SCALE as integers at the kept positions (None where the curve has a
    gap); [] when the curve is unusable (empty, all zero, not as long as its index)."""
    items = values_json.strip()[1:-1].split(",")
    if length == 0 or len(items) != length:
        return []
    picked = items if keep is None else [items[i] for i in keep]
    if "null" in values_json:
        values = np.array([_number(item) for item in picked], dtype=float)
    else:
        values = np.array(picked, dtype=float)
    usable = values[np.isfinite(values) & (values != 0)]
    if usable.size == 0:
        return []
    scaled = values / usable[0] * SCALE
    finite = np.isfinite(scaled)
    ints = np.rint(np.where(finite, scaled, 0)).astype(np.int64).tolist()
    return ints if finite.all() else [v if ok else None for v, ok in zip(ints, finite, strict=True)]


def _report_href(report: str | None, out: Path) -> str | None:
    """The report's URL relative to index.html, only when the file exists."""
    if not report:
        return None
    path = Path(report) if os.path.isabs(report) else out / report
    return relative_href(path, out) if path.is_file() else None


@cache
def _chart_layout() -> dict:
    """The comparison chart's layout (template, axes, legend), taken from viz so the in-page
    chart and ``meridian runs compare`` look the same."""
    return json.loads(comparison_chart([]).to_json())["layout"]


def dashboard_data(output_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The page's JSON: metric definitions, shared equity axes and one entry per run (newest
    first). Every string shown in the page is computed here; the page only displays them."""
    registry = Registry(output_dir)
    out = registry.output_dir
    rows = registry.query(_QUERY)
    parsed = [(row, json.loads(row["metrics"] or "{}")) for row in rows]
    names = list(METRIC_NAMES)
    for _, metrics in parsed:
        names.extend(name for name in metrics if name not in names)
    axes = _Axes()
    runs = []
    for row, metrics in parsed:
        params = json.loads(row["params"] or "{}")
        index_json, values_json = _split_equity(row["equity"])
        axis, keep, length = axes.add(index_json)
        equity = _equity(values_json, keep, length) if axis >= 0 else []
        error = row["error"]
        runs.append({
            "id": row["run_id"], "t": row["timestamp"], "s": row["strategy_name"],
            "n": row["name"], "k": row["kind"], "st": row["status"],
            "e": None if error is None else str(error)[:ERROR_CHARS],
            "p": {str(k): format_param_value(v) for k, v in params.items()},
            "pt": format_params(params, json.loads(row["changed"]) if row["changed"] else None),
            "tg": json.loads(row["tags"]) if row["tags"] else [],
            "no": row["note"] or "",
            "m": [metrics.get(name) for name in names],
            "f": [format_metric(name, metrics.get(name)) for name in names],
            "tc": row["trades_count"], "d": row["duration"],
            "r": _report_href(row["report"], out),
            "a": axis if equity else -1, "q": equity,
        })
    return {
        "version": 1,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "output_dir": str(out),
        "scale": SCALE,
        "metrics": [{"key": name, "label": metric_label(name),
                     "kind": metric_info(name).kind,
                     "rank": metric_rank(name)} for name in names],
        "table_metrics": [name for name in KEY_METRICS if name in names],
        "axes": axes.axes,
        "layout": _chart_layout(),
        "plotly_src": plotly_src(project.dashboard_path(out), out),
        "runs": runs,
        "sweeps": _sweeps(registry, out),
    }


def _sweeps(registry: Registry, out: Path) -> list[dict[str, Any]]:
    """The sweeps, newest first: what ran, how it ended, its best value, its report."""
    found = []
    for row in registry.query("SELECT sweep_id, timestamp, strategy_name, status, metric, "
                              "combinations, completed, info FROM sweeps "
                              "ORDER BY timestamp DESC LIMIT 200"):
        info = json.loads(row["info"] or "{}")
        best = (info.get("best") or [{}])[0]
        report = project.sweep_dir(out, row["sweep_id"]) / "report.html"
        found.append({
            "id": row["sweep_id"], "t": row["timestamp"], "s": row["strategy_name"],
            "st": row["status"], "m": row["metric"],
            "c": f"{row['completed']:,} of {row['combinations']:,}",
            "g": ", ".join(f"{k} × {len(v)}" for k, v in (info.get("grid") or {}).items()),
            "b": format_metric(row["metric"], (best.get("metrics") or {}).get(row["metric"])),
            "bp": format_params({k: v for k, v in (best.get("params") or {}).items()
                                 if k in (info.get("grid") or {})}),
            "r": relative_href(report, out) if report.is_file() else None,
        })
    return found


@cache
def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def render_dashboard(data: dict[str, Any]) -> str:
    """The complete page for :func:`dashboard_data`'s output."""
    return document("Meridian runs", _asset("dashboard.html"),
                    [_asset("dashboard.js"), PLOTLY_DEFERRED], css=_asset("dashboard.css"),
                    data=data, plotly=data.get("plotly_src"))


def build_dashboard(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write ``<output dir>/index.html`` from the registry (atomically) and return its path.

    Concurrent builds in one output directory take turns (a lock file), so whichever runs
    last reads the newest registry and no run finishing at the same time goes missing.
    """
    out = project.output_dir(output_dir)
    target = project.dashboard_path(out)
    with locked(out / LOCK_NAME):
        remove_stale_temps(out)  # left by a writer killed mid-write
        return write_atomic(target, render_dashboard(dashboard_data(out)))


def refresh_dashboard(output_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """:func:`build_dashboard`, but a failure is logged and returns None instead of raising:
    for callers (a run, a delete) whose own work must not fail because of the page."""
    try:
        return build_dashboard(output_dir)
    except Exception as error:  # noqa: BLE001 - the dashboard is a view; never fail the caller
        log.warning("dashboard not updated: %s: %s", type(error).__name__, error)
        return None
