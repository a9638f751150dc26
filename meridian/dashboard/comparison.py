"""``meridian runs compare``: runs side by side, as terminal text and as an offline HTML page.

The page (``outputs/comparisons/<id prefixes>.html``) holds :func:`meridian.viz.comparison_chart`
(every run's equity normalized to 1.0, legend naming strategy and the parameters that differ),
the metrics side by side, every parameter, and links to each run's report.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meridian import project
from meridian._files import write_atomic
from meridian.dashboard.page import metric_label, metric_rank
from meridian.engine.metrics import format_metric, ordered_metric_names
from meridian.exceptions import RegistryError
from meridian.pages import PLOTLY, document, plotly_src, relative_href
from meridian.record import data_differences, data_label
from meridian.storage import load_run_by_id
from meridian.viz import (
    as_series,
    comparison_chart,
    differing_params,
    format_param_value,
    normalized_equity,
    run_labels,
)

MAX_NAMED = 6
_CHART_SCRIPT = """"use strict";
(function () {
  var data = JSON.parse(document.getElementById("meridian-data").textContent);
  Plotly.newPlot("comparison-chart", data.figure.data, data.figure.layout,
                 {responsive: true, displaylogo: false});
})();"""

_CSS = """
:root { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2733; }
body { margin: 0; padding: 16px 20px 40px; background: #f6f8fa; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 18px 0 6px; }
.muted { color: #5f6b76; } .bad { color: #c0392b; }
section { background: #fff; border: 1px solid #dde3e8; border-radius: 6px; padding: 10px 14px;
          margin-top: 12px; overflow-x: auto; }
table { border-collapse: collapse; }
th, td { padding: 4px 12px; border-bottom: 1px solid #dde3e8; text-align: right;
         white-space: nowrap; font-variant-numeric: tabular-nums; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: 700; color: #1e8449; }
th.text, td.text { text-align: left; white-space: normal; }
tr.differs td { background: #fdf6e3; }
.label { display: block; font-weight: 400; color: #5f6b76; font-size: 12px; white-space: normal; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
"""


def load_runs(run_ids: Sequence[str], output_dir: str | os.PathLike[str] | None = None
              ) -> list[dict]:
    """The runs named by ids or unambiguous prefixes, in the order given; the same run named
    twice is an error (RunNotFoundError for unknown or ambiguous ids)."""
    runs = [load_run_by_id(run_id, output_dir) for run_id in run_ids]
    seen: dict[str, str] = {}
    for given, run in zip(run_ids, runs, strict=True):
        if run["run_id"] in seen:
            raise RegistryError(f"run {run['run_id'][:8]} is named twice "
                                f"({seen[run['run_id']]!r} and {given!r})")
        seen[run["run_id"]] = given
    return runs


def _metric_names(runs: Iterable[dict]) -> list[str]:
    merged: dict[str, None] = {}
    for run in runs:
        merged.update(dict.fromkeys(run.get("metrics") or {}))
    return ordered_metric_names(merged)


def _best(name: str, values: list[float | None]) -> float | None:
    """The best of ``values`` for the metric, or None when there is no contest (fewer than
    two values, all equal, or a metric without a better direction)."""
    present = [v for v in values if v is not None]
    rank = metric_rank(name)
    if len(present) < 2 or rank is None or min(present) == max(present):
        return None
    return min(present) if rank == "lower" else max(present)


def comparison_rows(runs: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """(label, one cell per run) rows: strategy, status, the parameters that differ, then
    every metric formatted with :func:`~meridian.engine.metrics.format_metric`."""
    rows = [("strategy", [str(r["strategy_name"]) for r in runs]),
            ("status", [str(r["status"]) for r in runs]),
            ("data", [data_label(r.get("data")) for r in runs])]
    for key in differing_params(r.get("params") or {} for r in runs):
        rows.append((key, [format_param_value(r["params"][key]) if key in (r["params"] or {})
                           else "—" for r in runs]))
    for name in _metric_names(runs):
        rows.append((name, [format_metric(name, (r.get("metrics") or {}).get(name))
                            for r in runs]))
    return rows


def comparison_text(runs: Sequence[dict]) -> str:
    """The runs' metrics side by side for a terminal: one column per run."""
    rows = comparison_rows(runs)
    header = ("", [r["run_id"][:8] for r in runs])
    table = [header, *rows]
    first = max(len(label) for label, _ in table)
    widths = [max(len(cells[i]) for _, cells in table) for i in range(len(runs))]
    warning = data_differences(runs)
    return "\n".join([*([warning] if warning else []), *(
        f"{label:<{first}}  " + "  ".join(f"{cell:>{w}}" for cell, w in
                                          zip(cells, widths, strict=True))
        for label, cells in table
    )])


def comparison_path(runs: Sequence[dict], output_dir: str | os.PathLike[str] | None = None
                    ) -> Path:
    """``comparisons/<id8>_<id8>….html`` (a short hash stands in for runs past the sixth)."""
    ids = [r["run_id"] for r in runs]
    name = "_".join(i[:8] for i in ids[:MAX_NAMED])
    if len(ids) > MAX_NAMED:
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:8]
        name += f"_and{len(ids) - MAX_NAMED}more-{digest}"
    return project.comparisons_dir(project.output_dir(output_dir)) / f"{name}.html"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(head: list[str], rows: list[str]) -> str:
    return (f"<table><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def comparison_page(runs: Sequence[dict], page_dir: Path, plotly: str | None = None,
                    out: Path | None = None) -> str:
    """The comparison page's HTML (``page_dir`` is where it will be written: report links are
    relative to it)."""
    labels = run_labels(runs)
    figure = comparison_chart(runs)
    head = ["<th></th>"] + [
        f'<th title="{_esc(r["run_id"])}"><code>{_esc(r["run_id"][:8])}</code>'
        f'<span class="label">{_esc(label)}</span></th>'
        for r, label in zip(runs, labels, strict=True)
    ]
    metric_rows = []
    for name in _metric_names(runs):
        values = [(r.get("metrics") or {}).get(name) for r in runs]
        best = _best(name, values)
        best_text = None if best is None else format_metric(name, best)  # ties as displayed
        shown = [format_metric(name, v) for v in values]
        if len(set(shown)) == 1:
            best_text = None
        cells = "".join(f'<td{" class=best" if text == best_text else ""}>{_esc(text)}</td>'
                        for text in shown)
        metric_rows.append(f"<tr><td>{_esc(metric_label(name))}</td>{cells}</tr>")
    differing = set(differing_params(r.get("params") or {} for r in runs))
    keys: dict[str, None] = {}
    for r in runs:
        keys.update(dict.fromkeys(r.get("params") or {}))
    param_rows = [
        f'<tr{" class=differs" if key in differing else ""}><td>{_esc(key)}</td>'
        + "".join(f"<td>{_esc(format_param_value(r['params'][key]))}</td>"
                  if key in (r.get("params") or {}) else "<td>—</td>" for r in runs)
        + "</tr>" for key in keys
    ]
    run_rows = []
    for r, label in zip(runs, labels, strict=True):
        report = project.contained(r.get("report_path"), [out or page_dir])
        link = (f'<a href="{_esc(relative_href(report, page_dir))}">report</a>'
                if report is not None and report.is_file() else "—")
        error = f'<span class="bad">{_esc(r["error"])}</span>' if r.get("error") else ""
        run_rows.append(
            f'<tr><td><code>{_esc(r["run_id"])}</code></td><td class="text">{_esc(label)}</td>'
            f'<td class="text">{_esc(r["status"])}</td>'
            f'<td class="text">{_esc(data_label(r.get("data")))}</td>'
            f"<td>{_esc((r.get('timestamp') or '')[:19].replace('T', ' '))}</td>"
            f'<td class="text">{link}</td><td class="text">{error}</td></tr>'
        )
    missing = [label for r, label in zip(runs, labels, strict=True)
               if normalized_equity(as_series(r.get("equity"))).empty]
    note = (f'<p class="muted">No equity curve (failed or empty run): {_esc("; ".join(missing))}'
            "</p>" if missing else "")
    warning = data_differences(runs)
    if warning:
        note = f'<p class="bad" data-role="data-warning">{_esc(warning)}</p>' + note
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    body = f"""
<h1>Comparison of {len(runs)} runs</h1>
<p class="muted">generated {generated} UTC · equity normalized to 1.0 at each run's start</p>
<section><div id="comparison-chart" style="height:480px"></div>{note}</section>
<section><h2>Metrics</h2>{_table(head, metric_rows)}</section>
<section><h2>Parameters</h2><p class="muted">Highlighted: parameters that differ.</p>
{_table(head, param_rows)}</section>
<section><h2>Runs</h2>{_table(
        ['<th>run id</th><th class="text">label</th><th class="text">status</th>'
         '<th class="text">data</th><th>time (UTC)</th><th class="text">report</th>'
         '<th class="text">error</th>'],
        run_rows)}</section>
"""
    return document(f"Meridian: comparison of {len(runs)} runs", body,
                    [PLOTLY, _CHART_SCRIPT], css=_CSS,
                    data={"figure": json.loads(figure.to_json())}, plotly=plotly)


def write_comparison(runs: Sequence[dict], output_dir: str | os.PathLike[str] | None = None,
                     path: str | os.PathLike[str] | None = None) -> Path:
    """Write the comparison page of ``runs`` (registry records) and return its path:
    ``path``, or :func:`comparison_path` under the output directory."""
    if len(runs) < 2:
        raise RegistryError(f"a comparison needs at least 2 runs, got {len(runs)}")
    target = Path(path) if path is not None else comparison_path(runs, output_dir)
    target = target.absolute()
    out = project.output_dir(output_dir)
    shared = plotly_src(target, out) if target.is_relative_to(out.absolute()) else None
    return write_atomic(target, comparison_page(runs, target.parent, shared, out))
