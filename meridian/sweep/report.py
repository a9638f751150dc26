"""A sweep's report: ``outputs/sweeps/<sweep_id>/report.html``, one offline page.

The metric over the grid (a line for one parameter, a heatmap for two, the best table for
more), the best combinations with their metrics — in and out of sample when split — and links
to their full notebook reports.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import plotly.io as pio

from meridian import project, viz
from meridian._files import write_atomic
from meridian.engine.metrics import KEY_METRICS, format_metric
from meridian.pages import lock_down, plotly_src


def _cell(text) -> str:
    return f"<td>{html.escape(str(text))}</td>"


def _best_table(result, info: dict, folder: Path) -> str:
    metric = result.metric
    columns = [metric, *[m for m in KEY_METRICS if m != metric]]
    split = bool(info.get("split"))
    head = ["#", *result.axes, *columns]
    if split:
        head += [f"{m} (out of sample)" for m in (metric, "total_return", "max_drawdown")]
    head.append("report")
    rows = []
    for rank, entry in enumerate(result.best, start=1):
        cells = [_cell(rank), *(_cell(viz.format_param_value(entry["params"][n]))
                                for n in result.axes)]
        cells += [_cell(format_metric(m, entry["metrics"][m])) for m in columns]
        if split:
            outside = entry["oos_metrics"] or {}
            cells += [_cell(format_metric(m, outside.get(m)))
                      for m in (metric, "total_return", "max_drawdown")]
        report = entry.get("report_path")
        if report and Path(report).exists():
            link = html.escape(Path(os.path.relpath(report, folder)).as_posix(), quote=True)
            cells.append(f'<td><a href="{link}">report</a></td>')
        else:
            cells.append(_cell("—"))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary(result, info: dict) -> str:
    facts = {
        "strategy": result.strategy,
        "status": result.status,
        "combinations": f"{info['completed']:,} of {info['combinations']:,}"
                        + (f" ({info['failed']:,} failed)" if info.get("failed") else ""),
        "ranked by": result.metric,
        "time": f"{info['duration']:.2f} s ({info['combinations_per_second'] or 0:,.0f} "
                "combinations/s)",
        "executor": f"{info['executor']}, {info['workers']} workers",
        "data": info["data_path"] or "bundled SYNTHETIC sample",
        "split": info["split"] or "none (whole history in sample)",
        "costs": f"commission {info['settings']['commission']}, "
                 f"slippage {info['settings']['slippage']}",
    }
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                            for k, v in facts.items()) + "</dl>"


def write_report(result, info: dict, output_dir: Path) -> Path:
    """Write the report atomically and return its path."""
    folder = project.sweep_dir(Path(output_dir), result.sweep_id)
    folder.mkdir(parents=True, exist_ok=True)
    figure = (viz.sweep_chart(result.chart, list(result.axes), result.metric)
              if result.chart is not None else None)
    chart = (pio.to_html(figure, include_plotlyjs=False, full_html=False,
                         config={"responsive": True}) if figure is not None else "")
    title = f"Sweep {result.sweep_id[:8]} · {result.strategy} by {result.metric}"
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script src="{html.escape(plotly_src(folder / "report.html", output_dir), quote=True)}"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
table {{ border-collapse: collapse; margin-top: 1rem; font-variant-numeric: tabular-nums; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: right; }}
th {{ background: #f4f6f8; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_summary(result, info)}
{chart}
<h2>Best {len(result.best)} combinations</h2>
{_best_table(result, info, folder)}
</body></html>
"""
    return write_atomic(folder / "report.html", lock_down(body))
