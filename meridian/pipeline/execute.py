"""Executing a parameterized notebook with papermill's Python API, in this process.

Kernels talk over IPC sockets in a private temporary folder rather than TCP: many runs
started at the same instant cannot collide on ports (papermill #511) or on socket files, and
nothing listens on the network.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ipykernel.kernelspec  # noqa: F401 - see below
import IPython.paths  # noqa: F401 - see below
import nbformat
import papermill
from jupyter_client import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from traitlets import Unicode
from traitlets.config import Config

# IPython.paths and ipykernel.kernelspec are imported above, not lazily by jupyter_client
# mid-run: the report exporter warms up in a thread meanwhile and imports IPython too, and two
# threads importing one package at once can fail with KeyError (a CPython import race).


class LoggedKernelManager(AsyncKernelManager):
    """A kernel whose own stdout/stderr (start-up warnings, "KeyboardInterrupt caught in
    kernel", crashes) go to a log file in the run folder, not into the user's terminal."""

    log_file = Unicode("", help="File receiving the kernel process's output.").tag(config=True)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if not self.log_file:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        with open(self.log_file, "ab") as stream:  # the child keeps its own copy of the fd
            kw.setdefault("stdout", stream)
            kw.setdefault("stderr", stream)
            return await super()._async_launch_kernel(kernel_cmd, **kw)


def execute(
    notebook: nbformat.NotebookNode,
    output_path: Path,
    parameters: dict[str, Any],
    *,
    cwd: Path | None = None,
    timeout: int | None = None,
    kernel_log: Path | None = None,
) -> PapermillExecutionError | None:
    """Run ``notebook`` with ``parameters`` injected, writing it to ``output_path``.

    Returns papermill's error when a cell raised (the notebook is still written, with
    papermill's error banner at the top) and None on success. The kernel process's own output
    goes to ``kernel_log`` when given.
    """
    # papermill's own parameter parser warns about lines it cannot read (comments with quotes);
    # parameters are validated before execution here, so those warnings are noise.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    sockets = Path(tempfile.mkdtemp(prefix="meridian-kernel-"))
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / "k")  # short: socket paths are limited to ~100 bytes
    config.NotebookClient.kernel_manager_class = LoggedKernelManager
    config.LoggedKernelManager.log_file = str(kernel_log or "")
    # Figures as Plotly JSON in the notebook (what JupyterLab renders); the HTML export turns
    # them into live charts. Users may choose another renderer through the same variable.
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
    try:
        papermill.execute_notebook(
            notebook,
            str(output_path),
            parameters=parameters,
            kernel_name=notebook.metadata["kernelspec"]["name"],
            progress_bar=False,
            # papermill rewrites the whole notebook after every cell by default (≈ 1 s for a
            # report with figures); it is written once at the end, and on failure.
            request_save_on_cell_execute=False,
            cwd=str(cwd or Path.cwd()),
            execution_timeout=timeout,
            config=config,
        )
    except PapermillExecutionError as error:
        return error
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return None
