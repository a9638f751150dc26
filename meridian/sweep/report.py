"""A sweep's report: ``outputs/sweeps/<sweep_id>/report.html``, one offline page.

What ran; how much of the best result is luck (trials, deflated Sharpe ratio, probability of
backtest overfitting, in plain words, and bootstrap bands of the best one's drawdown and
CAGR); the metric over the grid (a line for one parameter, a heatmap for two — out of sample
too with ``--split``, beside an in-sample vs out-of-sample scatter); the walk-forward windows,
their stitched out-of-sample curve and how stable the choices were; the best combinations and
links to their full reports.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from meridian import project, viz
from meridian._files import write_atomic
from meridian.engine.metrics import KEY_METRICS, format_metric
from meridian.pages import CHART_LOADER, chart_html, lock_down, plotly_src


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
                        + (f" ({info['failed']:,} failed)" if info.get("failed") else "")
                        + (f" ({info['skipped']:,} left out by the strategy's rules)"
                           if info.get("skipped") else ""),
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


def _figure(figure) -> str:
    """A chart as inert JSON that :data:`~meridian.pages.CHART_LOADER` draws (the page's
    policy runs no other script)."""
    return chart_html(figure) if figure is not None else ""


def _stats(stats: dict | None) -> str:
    if not stats:
        return ""
    pbo = "undefined (one combination)" if stats["pbo"] is None else f"{stats['pbo']:.2f}"
    bands = stats["bootstrap"]
    rows = [("Trials (combinations tried)", f"{stats['trials']:,}"),
            ("Deflated Sharpe ratio (DSR)", f"{stats['dsr']:.3f}"),
            ("Probabilistic Sharpe ratio, PSR(0)", f"{stats['psr']:.3f}"),
            ("Probability of backtest overfitting (PBO)",
             pbo + (f" (CSCV, 16 blocks, {stats['pbo_columns']:,} combinations)"
                    if stats.get("pbo_columns") else "")),
            ("Best one's max drawdown, bootstrap 5 / 50 / 95 %",
             " / ".join(f"{bands['max_drawdown'][q]:.1%}" for q in ("p5", "p50", "p95"))),
            ("Best one's CAGR, bootstrap 5 / 50 / 95 %",
             " / ".join(f"{bands['cagr'][q]:.1%}" for q in ("p5", "p50", "p95")))]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    return (f"<h2>How much of it is luck</h2><p class=\"verdict\">"
            f"{html.escape(stats['verdict'])}</p><dl>{items}</dl>")


def _walk_forward(result, info: dict, folder: Path) -> str:
    walk = result.walk_forward
    if not walk:
        return ""
    metric = result.metric
    head = ["window", "train", "test", *result.axes, f"{metric} in sample",
            f"{metric} out of sample", "return out of sample"]
    rows = []
    for row in walk["windows"]:
        cells = [row["window"], f"{row['train_start']} → {row['train_end']}",
                 f"{row['test_start']} → {row['test_end']}",
                 *(viz.format_param_value(row["params"][n]) for n in result.axes),
                 format_metric(metric, row["in_sample"]),
                 format_metric(metric, row["out_of_sample"]),
                 format_metric("total_return", row["oos_total_return"])]
        rows.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    stitched = walk["metrics"]
    summary = ", ".join(f"{m.replace('_', ' ')} {format_metric(m, stitched.get(m))}"
                        for m in KEY_METRICS)
    run = project.run_dir(Path(info["output_dir"]), walk["run_id"]) / "report.html"
    link = (f' (<a href="{html.escape(os.path.relpath(run, folder), quote=True)}">its report'
            "</a>)" if run.is_file() else "")
    stable = "; ".join(
        f"{name}: {entry['changes']} change{'s' if entry['changes'] != 1 else ''}"
        + (f", spread {entry['spread']:.0%} of the grid" if entry["spread"] is not None else "")
        for name, entry in walk["stability"].items())
    curve = viz.walk_forward_chart(walk["equity"], walk.get("best_equity"),
                                   viz.format_params(walk.get("best_params") or {}))
    return (f"<h2>Walk-forward {html.escape(walk['spec'])}"
            f"{' (anchored)' if walk['anchored'] else ''}</h2>"
            f"<p>Each window chooses by {html.escape(metric)} on its training part only and "
            "trades its test part only. Stitched out-of-sample run: "
            f"{html.escape(summary)}{link}.</p>{_figure(curve)}"
            f"<p>Parameter stability — {html.escape(stable)}.</p>"
            f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _split(result) -> str:
    """In-sample against out-of-sample for every combination, and the OOS heatmap."""
    from meridian.sweep.store import OOS_PREFIX, read_results

    metric = result.metric
    frame = read_results(result.output_dir, result.sweep_id, [metric, OOS_PREFIX + metric])
    if (OOS_PREFIX + metric) not in frame or frame[OOS_PREFIX + metric].isna().all():
        return ""
    scatter = viz.in_vs_out_of_sample(frame[metric], frame[OOS_PREFIX + metric], metric)
    heatmap = None
    if result.chart is not None:
        outside = result.chart.copy()
        by_index = frame.set_index("idx")[OOS_PREFIX + metric]
        outside[metric] = by_index.reindex(outside["idx"]).to_numpy()
        heatmap = viz.sweep_chart(outside, list(result.axes), metric)
        if heatmap is not None:
            heatmap.update_layout(title=f"{metric.replace('_', ' ')} out of sample")
    return f"<h2>Out of sample</h2>{_figure(scatter)}{_figure(heatmap)}"


def write_report(result, info: dict, output_dir: Path) -> Path:
    """Write the report atomically and return its path."""
    folder = project.sweep_dir(Path(output_dir), result.sweep_id)
    folder.mkdir(parents=True, exist_ok=True)
    figure = (viz.sweep_chart(result.chart, list(result.axes), result.metric)
              if result.chart is not None else None)
    title = f"Sweep {result.sweep_id[:8]} · {result.strategy} by {result.metric}"
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script src="{html.escape(plotly_src(folder / "report.html", output_dir), quote=True)}"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }}
.verdict {{ font-size: 1.05rem; background: #f4f6f8; padding: .6rem .8rem; border-radius: 6px; }}
table {{ border-collapse: collapse; margin-top: 1rem; font-variant-numeric: tabular-nums; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: right; }}
th {{ background: #f4f6f8; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_summary(result, info)}
{_stats(result.stats)}
{_figure(figure)}
{_split(result) if info.get("split") else ""}
{_walk_forward(result, {**info, "output_dir": str(output_dir)}, folder)}
<h2>Best {len(result.best)} combinations</h2>
{_best_table(result, info, folder)}
<script>{CHART_LOADER}</script>
</body></html>
"""
    return write_atomic(folder / "report.html", lock_down(body, [CHART_LOADER]))
