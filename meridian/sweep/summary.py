"""The terminal summary of a sweep: what ran, the best combinations, where the report is."""

from __future__ import annotations

from meridian.engine.metrics import KEY_METRICS, format_metric
from meridian.viz import format_param_value


def summary_lines(result) -> list[str]:
    """Lines to print after ``meridian sweep``."""
    done = result.completed
    rate = done / result.duration if result.duration else 0.0
    of = f" of {result.combinations:,}" if done != result.combinations else ""
    lines = [f"sweep {result.sweep_id} · {result.strategy} · {done:,}{of} combinations in "
             f"{result.duration:.2f} s ({rate:,.0f}/s) · {result.status}"]
    metrics = [result.metric, *[m for m in KEY_METRICS if m != result.metric]]
    split = any(entry["oos_metrics"] for entry in result.best)
    head = ["#", *result.axes, *metrics] + ([f"{result.metric} (oos)", "return (oos)"]
                                            if split else [])
    rows = []
    for rank, entry in enumerate(result.best, start=1):
        row = [str(rank), *(format_param_value(entry["params"][n]) for n in result.axes),
               *(format_metric(m, entry["metrics"][m]) for m in metrics)]
        if split:
            outside = entry["oos_metrics"] or {}
            row += [format_metric(result.metric, outside.get(result.metric)),
                    format_metric("total_return", outside.get("total_return"))]
        rows.append(row)
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *rows, strict=True)]
    lines.append(f"best by {result.metric}:")
    for row in [head, *rows]:
        lines.append("  " + "  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    for entry in result.best:
        if entry.get("report_path"):
            check = "same metrics" if entry.get("matches_notebook") else "METRICS DIFFER"
            lines.append(f"  report #{result.best.index(entry) + 1}: {entry['report_path']} "
                         f"({check})")
    if result.skipped:
        lines.append(f"{result.skipped:,} of {done:,} combinations left out: they break a rule "
                     f"of {result.strategy} (PARAM_RULES)")
    if result.failed:
        lines.append(f"{result.failed:,} of {done:,} combinations failed, e.g. "
                     f"{result.first_error}")
    lines += stats_lines(result.stats, result.walk_forward, result.metric)
    lines.append(f"report: {result.report_path}")
    return lines


def stats_lines(stats: dict | None, walk_forward: dict | None, metric: str) -> list[str]:
    """The overfitting statistics and the walk-forward windows, for the terminal."""
    lines = []
    if stats:
        pbo = "undefined (one combination)" if stats["pbo"] is None else f"{stats['pbo']:.2f}"
        bands = stats["bootstrap"]
        lines += [
            f"overfitting: {stats['trials']:,} trials · deflated Sharpe ratio (DSR) "
            f"{stats['dsr']:.3f} · PSR(0) {stats['psr']:.3f} · probability of backtest "
            f"overfitting (PBO) {pbo}",
            f"  {stats['verdict']}",
            f"  bootstrap of the best: max drawdown {bands['max_drawdown']['p5']:.1%} / "
            f"{bands['max_drawdown']['p50']:.1%} / {bands['max_drawdown']['p95']:.1%}, "
            f"CAGR {bands['cagr']['p5']:.1%} / {bands['cagr']['p50']:.1%} / "
            f"{bands['cagr']['p95']:.1%} (5 / 50 / 95 %)",
        ]
    if walk_forward:
        lines.append(f"walk-forward {walk_forward['spec']}"
                     f"{' anchored' if walk_forward['anchored'] else ''}: "
                     f"{len(walk_forward['windows'])} windows, stitched out-of-sample run "
                     f"{walk_forward['run_id']}")
        for row in walk_forward["windows"]:
            params = ", ".join(f"{k}={format_param_value(v)}" for k, v in row["params"].items())
            lines.append(f"  {row['window']:>3}  test {row['test_start']} → {row['test_end']}  "
                         f"{params}  in-sample {format_metric(metric, row['in_sample'])}  "
                         f"out-of-sample {format_metric(metric, row['out_of_sample'])}")
        stitched = walk_forward["metrics"]
        lines.append("  stitched: " + "  ".join(
            f"{m}={format_metric(m, stitched.get(m))}" for m in KEY_METRICS))
    return lines


def sweep_row_lines(sweep_id: str, sort: str | None, limit: int | None, output_dir) -> list[str]:
    """``meridian runs list --sweep ID``: a header line, then one line per combination."""
    from meridian.registry.sweeps import load_sweep
    from meridian.sweep.store import load_sweep_rows

    sweep = load_sweep(sweep_id, output_dir)
    rows = load_sweep_rows(sweep["sweep_id"], sort, limit, output_dir)
    order = sort or sweep["metric"]
    shown = [order, *[m for m in KEY_METRICS if m != order]]
    lines = [f"sweep {sweep['sweep_id']} · {sweep['strategy_name']} · {sweep['completed']:,} of "
             f"{sweep['combinations']:,} combinations · {sweep['status']} · best by {order}"]
    for rank, row in enumerate(rows, start=1):
        params = ", ".join(f"{k}={format_param_value(v)}" for k, v in row["params"].items()
                           if k in sweep["grid"])
        values = "  ".join(f"{m}={format_metric(m, row['metrics'][m])}" for m in shown)
        error = f"  error: {row['error']}" if row["error"] else ""
        lines.append(f"{rank:>5}  {params}  {values}{error}")
    return lines
