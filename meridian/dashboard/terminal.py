"""Runs as terminal text, for ``meridian runs list | search | show | stats | delete``.

Numbers go through :func:`meridian.engine.metrics.format_metric`; nothing here computes one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from meridian import project
from meridian.engine.metrics import KEY_METRICS, format_metric, metric_info, ordered_metric_names
from meridian.exceptions import ParameterError
from meridian.parameters import parse_assignments as parse_literals
from meridian.parameters import split_assignment
from meridian.record import data_label
from meridian.viz import format_param_value, format_params

SHORT_ID = 8
ERROR_WIDTH = 120


def _first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells, each column padded to its widest cell (numbers right-aligned: cells
    starting with a digit, a sign or '$')."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for cell, width in zip(row, widths, strict=True):
            numeric = cell[:1].isdigit() or cell[:1] in "-$" or cell == "n/a"
            cells.append(cell.rjust(width) if numeric else cell.ljust(width))
        lines.append("  ".join(cells).rstrip())
    return lines


def run_lines(runs: Iterable[dict], sort: str | None = None) -> list[str]:
    """One aligned line per run: id prefix, time, strategy, status, data (file and span), key
    metrics (plus the
    ``sort`` metric when it is not one of them), parameters or, for a failed run, its error."""
    shown = [(metric_info(name).short, name) for name in KEY_METRICS]
    if sort and sort not in {metric for _, metric in shown} and not _is_column(sort):
        shown.append((sort, sort))
    rows = []
    for run in runs:
        metrics = run.get("metrics") or {}
        row = [run["run_id"][:SHORT_ID], (run.get("timestamp") or "")[:16].replace("T", " "),
               str(run["strategy_name"]), str(run["status"]), data_label(run.get("data"))]
        for label, metric in shown:
            row += [label, format_metric(metric, metrics.get(metric))]
        tail = format_params(run.get("params") or {})
        if run.get("error"):
            tail = f"error: {_first_line(run['error'])}  [{tail}]"
        row.append(tail)
        rows.append(row)
    return _columns(rows)


def _is_column(name: str) -> bool:
    from meridian.storage import SORT_COLUMNS

    return name in SORT_COLUMNS


def run_details(run: dict, traceback: bool = False, out: Path | None = None) -> str:
    """Everything the registry knows about one run, as aligned text (no equity curve). With
    ``out``, a report or notebook path outside it is marked as never followed."""
    def value(v: Any) -> str:
        return "—" if v in (None, "") else str(v)

    def path(v: str | None) -> str | None:
        if not v or out is None or project.contained(v, [out, *project.notebook_dirs()]):
            return v
        return f"{v} (outside the outputs folder: never opened)"

    info = [
        ("run", run["run_id"]), ("strategy", run["strategy_name"]), ("name", run.get("name")),
        ("kind", run.get("kind")), ("status", run["status"]),
        ("time", run.get("timestamp")),
        ("duration", f"{run['duration']:.2f} s" if run.get("duration") is not None else None),
        ("trades", run.get("trades_count")),
        ("notebook", path(run.get("notebook_path"))), ("report", path(run.get("report_path"))),
        ("tags", ", ".join(run.get("tags") or [])), ("note", run.get("note")),
        ("parent", run.get("parent_id")),
    ]
    data = run.get("data") or {}
    code = run.get("code") or {}
    environment = run.get("environment") or {}
    git = environment.get("git") or {}
    info += [
        ("data", data.get("path") or data.get("source")),
        ("data sha256", data.get("sha256")),
        ("span", f"{(data.get('first') or '')[:10]} → {(data.get('last') or '')[:10]}, "
                 f"{data.get('bars'):,} bars" if data.get("bars") else None),
        ("code", (code.get("notebook") or code.get("module") or "")
         + (f", cell {code['cell_index']}" if code.get("cell_index") is not None else "")
         or None),
        ("code sha256", code.get("notebook_sha256") or code.get("module_sha256")
         or code.get("cell_sha256") or run.get("source_hash")),
        ("git", f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}" if git else None),
        ("python", environment.get("python")),
        ("settings", ", ".join(f"{k}={format_param_value(v)}"
                               for k, v in (run.get("settings") or {}).items())),
    ]
    lines = [f"{label:<12}{value(v)}" for label, v in info]
    params = run.get("params") or {}
    lines.append("parameters" + ("" if params else "  —"))
    width = max((len(k) for k in params), default=0)
    lines += [f"  {k:<{width}}  {format_param_value(v)}" for k, v in params.items()]
    metrics = run.get("metrics") or {}
    lines.append("metrics" + ("" if metrics else "  —"))
    names = ordered_metric_names(metrics)
    width = max((len(n) for n in names), default=0)
    lines += [f"  {n:<{width}}  {format_metric(n, metrics[n])}" for n in names]
    if run.get("error"):
        lines.append(f"{'error':<12}{run['error']}")
    if run.get("traceback"):
        if traceback:
            lines += ["traceback", run["traceback"].rstrip()]
        else:
            lines.append(f"{'traceback':<12}(meridian runs show {run['run_id'][:SHORT_ID]} "
                         "--traceback)")
    return "\n".join(lines)


def stats_text(stats: dict, registry: str) -> str:
    """``get_registry_stats`` as text: totals, runs per strategy, the best run per metric."""
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(stats["by_status"].items()))
    lines = [f"runs      {stats['total']}" + (f"  ({statuses})" if statuses else ""),
             f"registry  {registry}"]
    if stats["by_strategy"]:
        lines.append("by strategy")
        width = max(len(s) for s in stats["by_strategy"])
        lines += [f"  {s:<{width}}  {n}" for s, n in sorted(stats["by_strategy"].items())]
    best = stats.get("best") or {}
    if best:
        lines.append("best run per metric")
        rows = [[f"  {name}", format_metric(name, entry["value"]),
                 entry["run_id"][:SHORT_ID], str(entry["strategy_name"])]
                for name in ordered_metric_names(best) for entry in [best[name]]]
        lines += _columns(rows)
    return "\n".join(lines)


def parse_assignments(values: Sequence[str], option: str, number: bool) -> dict[str, Any]:
    """``NAME=VALUE`` options → dict, through the one parser
    (:func:`meridian.parameters.parse_assignments`); with ``number`` every value must be a
    finite number (metric bounds)."""
    if not number:
        return parse_literals(values, option)
    parsed: dict[str, Any] = {}
    for item in values:
        name, raw = split_assignment(item, option, "sharpe_ratio=1")
        try:
            parsed[name] = float(raw)
        except ValueError:
            parsed[name] = math.nan
        if not math.isfinite(parsed[name]):
            raise ParameterError(f"{option} expects METRIC=NUMBER, got {item!r}: {raw!r} is not "
                                 "a finite number")
    return parsed
