"""Starting the kernel a run executes in, as early as possible.

A kernel takes most of a second to boot. ``meridian run`` starts it right after the inputs are
validated and only then imports papermill and nbconvert, so the two overlap.

Kernels talk over IPC sockets in a private temporary folder rather than TCP: many runs
started at the same instant cannot collide on ports (papermill #511) or on socket files, and
nothing listens on the network. The connection file lives there too, so closing the kernel
leaves nothing behind; a folder left by a process killed with -9 is removed by the next run.
Their own stdout/stderr go to a log file in the run folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# IPython.paths and ipykernel.kernelspec are imported here, not lazily by jupyter_client
# mid-run: the report exporter warms up in a thread meanwhile and imports IPython too, and two
# threads importing one package at once can fail with KeyError (a CPython import race).
import ipykernel.kernelspec  # noqa: F401
import IPython.paths  # noqa: F401
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import Unicode

from meridian._process import pid_exists


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


PREFIX = "meridian-kernel-"


def remove_orphaned_socket_folders() -> None:
    """Remove socket folders whose creating process is gone (it was killed with -9 and had no
    chance to clean up); the folder name carries that process's pid."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class Kernel:
    """A started kernel and the private folder of its sockets; ``close()`` ends both."""

    def __init__(self, kernel_name: str, *, cwd: Path | None = None,
                 log_file: Path | None = None, env: dict[str, str] | None = None) -> None:
        # Figures as Plotly JSON in the notebook (what JupyterLab renders); the HTML export
        # turns them into live charts. Users may choose another renderer with this variable.
        os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
        remove_orphaned_socket_folders()
        self.sockets = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        self.manager = LoggedKernelManager(
            kernel_name=kernel_name, transport="ipc",
            ip=str(self.sockets / "k"),  # short: socket paths are limited to ~100 bytes
            connection_file=str(self.sockets / "kernel.json"),  # removed with the folder
            log_file=str(log_file or ""),
        )
        try:
            run_sync(self.manager.start_kernel)(cwd=str(cwd or Path.cwd()),
                                                env={**os.environ, **(env or {})})
        except BaseException:
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise

    def close(self) -> None:
        try:
            if run_sync(self.manager.is_alive)():
                run_sync(self.manager.shutdown_kernel)(now=True)
        finally:
            shutil.rmtree(self.sockets, ignore_errors=True)
