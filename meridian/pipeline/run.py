"""``meridian run``: one strategy notebook → executed notebook, HTML report, registry row.

Order matters: everything that can be checked without a kernel (strategy name, parameter
names and types, data file) is checked first, so bad input costs a one-line error and writes
nothing. After execution the run is always recorded, failed or not, because a failing
notebook's report is exactly what its author needs to see.
"""

from __future__ import annotations

import sys
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from meridian import _process, project
from meridian._files import write_atomic
from meridian.pages import plotly_src
from meridian.pipeline.kernel import Kernel
from meridian.pipeline.notebooks import (
    find_notebook,
    notebook_parameters,
    read_notebook,
    run_parameters,
    source_hash,
)
from meridian.pipeline.parameterize import load_params_file, preflight, resolve_params


def prepare(strategy: str, params: dict[str, Any] | None = None,
            params_file: str | Path | None = None):
    """Locate and read the notebook and validate the parameters; no kernel, no files.
    Returns the path, the notebook, the values given and every parameter's value (those of
    the parameters cell, and the run settings it does not declare when they are given)."""
    path = find_notebook(strategy)
    notebook = read_notebook(path)
    overrides = {**load_params_file(params_file), **(params or {})}
    values = resolve_params(run_parameters(notebook, path.stem), overrides, path.stem)
    full = {name: p.default for name, p in notebook_parameters(notebook).items()} | values
    preflight(notebook, full, path.stem)
    return path, notebook, values, full


def _say(text: str) -> None:
    """One progress line on stderr (the command's result goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


def run_notebook(
    strategy: str,
    params: dict[str, Any] | None = None,
    *,
    params_file: str | Path | None = None,
    output_dir: str | Path | None = None,
    no_input: bool = False,
    kind: str = "notebook",
    parent_id: str | None = None,
    run_id: str | None = None,
    baseline: dict[str, Any] | None = None,
    universe: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Execute ``notebooks/<strategy>.py`` with ``params`` and record the run.

    Returns the registry record (``status`` "success" or "failed"). Raises MeridianError
    subclasses for bad input, before anything is written. The run is recorded as ``running``
    (with this process's pid and host) before its kernel starts, and every way out records
    how it ended: Ctrl-C or SIGTERM mark it ``interrupted`` (and re-raise), kill -9 is noticed
    the next time the registry opens. ``run_id`` names the run (default: a new UUID).
    ``baseline``: what the report highlights as changed is measured against (a re-run's
    original parameters; default: the notebook's own). ``universe``: the notebook's
    ``notebook_backtest`` trades every market of it with one account (kind ``portfolio``);
    the file and every market's data are checked before anything is written. ``progress``:
    say on stderr what is happening (kernel, cells executed, report), for a terminal.
    """
    from meridian import storage

    path, notebook, values, full = prepare(strategy, params, params_file)
    chosen = None
    universe = universe or (full.get("universe") if isinstance(full.get("universe"), str)
                            else None)  # a portfolio notebook names its own
    if universe:
        from meridian.universe import load_universe

        chosen = load_universe(universe)
        chosen.frames()  # a bad market file or COT market: one line now, nothing written
        kind = "portfolio"
    defaults = {name: p.default for name, p in run_parameters(notebook).items()}
    out = project.output_dir(output_dir)
    storage.Registry(out).check()  # a damaged registry: one line now, not after the run
    run_id = project.check_run_id(run_id) if run_id else str(uuid.uuid4())
    folder = project.run_dir(out, run_id)
    folder.mkdir(parents=True, exist_ok=True)  # a queued re-run may have made it
    executed_path = folder / f"{path.stem}.ipynb"
    report_path = folder / "report.html"
    record: dict[str, Any] = {
        "run_id": run_id, "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "strategy_name": path.stem, "kind": kind, "status": "running", "params": full,
        "code": {"notebook": str(path), "notebook_sha256": source_hash(path)},
        "notebook_path": str(executed_path), "report_path": str(report_path),
        "owner": _process.identity(), "parent_id": parent_id,
        "changed": changed_names(full, {**defaults, **(baseline or {})}),
    }
    if chosen is not None:
        record["universe"] = chosen.provenance()
    storage.save_run(record, out)

    started = time.perf_counter()
    say = _say if progress else (lambda _text: None)
    say(f"{path.stem}: starting a kernel (run {run_id[:8]})")
    try:
        with _process.sigterm_interrupts():
            kernel = Kernel(notebook.metadata["kernelspec"]["name"],
                            log_file=folder / "kernel.log", env={
                                "MERIDIAN_RUN_ID": run_id, "MERIDIAN_RUN_DIR": str(folder),
                                "MERIDIAN_STRATEGY": path.stem,
                                "MERIDIAN_CHANGED": ",".join(record["changed"]),
                                **({"MERIDIAN_UNIVERSE": str(chosen.path)} if chosen else {})})
            try:
                # Imported while the kernel boots: papermill and nbconvert take most of a second.
                from meridian.pipeline.execute import execute
                from meridian.pipeline.export import export_html, make_exporter, warm_up

                with ThreadPoolExecutor(max_workers=1) as background:
                    # Prepare the HTML exporter while the kernel works: the main thread waits.
                    exporter = background.submit(warm_up, make_exporter(no_input))
                    failure = execute(notebook, executed_path, values, kernel=kernel,
                                      progress=f"{path.stem}: cells" if progress else None)
            finally:
                kernel.close()
    except KeyboardInterrupt as interrupt:
        how = "SIGTERM" if isinstance(interrupt, _process.Terminated) else "Ctrl-C"
        record.update(status="interrupted", error=f"interrupted by {how} while running",
                      duration=round(time.perf_counter() - started, 3))
        record.pop("owner", None)
        storage.save_run(record, out)
        _refresh(out, run_id)
        raise
    say(f"{path.stem}: writing the report")
    executed = nbformat.read(executed_path, as_version=4)
    record.update(
        status="failed" if failure else "success",
        error=f"{failure.ename}: {failure.evalue}" if failure else None,
        traceback="\n".join(failure.traceback) if failure else None,
    )
    try:
        export_html(executed, report_path, exporter=exporter.result(),
                    plotly_src=plotly_src(report_path, out))
    except Exception as error:  # noqa: BLE001 - the run itself is what we must not lose
        record.update(status="failed", error=f"report export failed: {error}",
                      traceback=traceback.format_exc())
    record["duration"] = round(time.perf_counter() - started, 3)
    record.pop("owner", None)
    executed.metadata["meridian"] = {k: v for k, v in record.items() if k != "params"}
    nbformat.write(executed, executed_path)
    # the record the kernel glued, under the pipeline's own bookkeeping
    record = {**storage.record_from_notebook(executed_path, executed), **record}
    _write_trades(record.get("trades"), folder)
    storage.save_run(record, out)
    _refresh(out, run_id)
    return storage.load_run_by_id(run_id, out)


def _write_trades(trades: list[dict] | None, folder: Path) -> None:
    """``trades.csv`` beside the report (which links it): every trade of the glued record."""
    if trades:
        import pandas as pd

        write_atomic(folder / "trades.csv", pd.DataFrame(trades).to_csv(index=False))


def changed_names(values: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """The names whose value differs from ``baseline`` (a name it lacks counts as changed)."""
    return [name for name, value in values.items()
            if name not in baseline or baseline[name] != value]


def _refresh(out: Path, run_id: str) -> None:
    from meridian.dashboard import refresh_dashboard

    # outputs/index.html: the run's chunk and the shell (the same cost at any registry size);
    # logs and carries on if it cannot
    refresh_dashboard(out, run_ids=[run_id])
