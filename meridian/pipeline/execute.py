"""Executing a parameterized notebook with papermill's Python API, in this process, on a
kernel started beforehand (:mod:`meridian.pipeline.kernel`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from meridian.pipeline.kernel import Kernel


def execute(
    notebook: nbformat.NotebookNode,
    output_path: Path,
    parameters: dict[str, Any],
    *,
    kernel: Kernel | None = None,
    cwd: Path | None = None,
    timeout: int | None = None,
    kernel_log: Path | None = None,
    progress: str | None = None,
) -> PapermillExecutionError | None:
    """Run ``notebook`` with ``parameters`` injected, writing it to ``output_path``.

    Returns papermill's error when a cell raised (the notebook is still written, with
    papermill's error banner at the top) and None on success. Uses ``kernel`` when given (and
    leaves closing it to the caller); otherwise starts one whose output goes to ``kernel_log``.
    ``progress``: a label for a cells-executed bar on stderr (None: silent).
    """
    # papermill's own parameter parser warns about lines it cannot read (comments with quotes);
    # parameters are validated before execution here, so those warnings are noise.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    own = kernel is None
    if own:
        kernel = Kernel(notebook.metadata["kernelspec"]["name"], cwd=cwd, log_file=kernel_log)
    try:
        papermill.execute_notebook(
            notebook,
            str(output_path),
            parameters=parameters,
            kernel_name=notebook.metadata["kernelspec"]["name"],
            progress_bar={"desc": progress, "leave": False} if progress else False,
            # papermill rewrites the whole notebook after every cell by default (≈ 1 s for a
            # report with figures); it is written once at the end, and on failure.
            request_save_on_cell_execute=False,
            cwd=str(cwd or Path.cwd()),
            execution_timeout=timeout,
            km=kernel.manager,
        )
    except PapermillExecutionError as error:
        return error
    finally:
        if own:
            kernel.close()
    return None
