"""A warm kernel for one notebook: what ``meridian ui``'s Run as Backtest executes cells in.

Starting a kernel and loading data take seconds; a user clicking Run as Backtest again after
changing a parameter should not pay them twice. A :class:`Session` keeps one kernel per
notebook. Before a cell runs, the notebook's earlier code cells run once each, in order — the
parameters cell with the page's values appended, as papermill injects them — and are
remembered by a chain of SHA-256 hashes (each cell's hash covers every cell before it). A
second click with the same earlier cells runs only the clicked cell. If an earlier cell
changed, the kernel restarts and runs them all again: a backtest never depends on what a
previous version of the notebook left in memory. A kernel that died is restarted.

The clicked cell runs as ``%%backtest`` (:mod:`meridian.magic`), so the run is computed,
reported and saved exactly as in Jupyter; the report's sections come back as the display
outputs they are in a notebook.
"""

from __future__ import annotations

import hashlib
import queue
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meridian.pipeline.kernel import Kernel

CELL_TIMEOUT = 600.0
"""Seconds one cell may run before it is interrupted."""
KERNEL_DIED = "the kernel died while running the cell; the next run starts a new one"


@dataclass
class CellOutcome:
    """What running one cell gave: its display outputs, printed text and error (one line)."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    error: str | None = None
    expressions: dict[str, Any] = field(default_factory=dict)


@dataclass
class BacktestOutcome:
    """A Run as Backtest: the run's id (None when it failed), the report sections, the
    earlier cells that had to run, whether the kernel was started for it, and the time."""

    run_id: str | None
    sections: list[dict[str, Any]]
    error: str | None
    ran_cells: list[int]
    kernel_started: bool
    seconds: float


def chain(keys: list[str], source: str) -> str:
    """The key of a cell run after the cells keyed ``keys``."""
    previous = keys[-1] if keys else ""
    return hashlib.sha256(f"{previous}\0{source}".encode()).hexdigest()


def magic_line(*, name: str, notebook: str, cell_index: int, params: dict[str, Any]) -> str:
    """The ``%%backtest`` line of a Run as Backtest (values as Python literals)."""
    words = ["%%backtest", "--use-namespace", "--kind", "cell", "--name", name,
             "--notebook", notebook, "--cell-index", str(cell_index)]
    words += [f"{key}={value!r}" for key, value in params.items()]
    return " ".join(shlex.quote(word) for word in words)


class Session:
    """One notebook's warm kernel. Thread-safe: one cell runs at a time."""

    def __init__(self, kernel_name: str = "python3", *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = CELL_TIMEOUT,
                 log_file: Path | None = None) -> None:
        self.kernel_name, self.cwd, self.env = kernel_name, cwd, dict(env or {})
        self.log_file = log_file
        self.timeout = timeout  # seconds a cell may run before it is interrupted
        self.kernel: Kernel | None = None
        self.client = None
        self.keys: list[str] = []  # chain keys of the earlier cells run in this kernel
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ kernel
    def _alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return self.kernel is not None and run_sync(self.kernel.manager.is_alive)()

    def _start(self) -> None:
        from jupyter_client.blocking import BlockingKernelClient

        self.close()
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.kernel = Kernel(self.kernel_name, cwd=self.cwd, env=self.env,
                             log_file=self.log_file)
        client = BlockingKernelClient()
        client.load_connection_info(self.kernel.manager.get_connection_info())
        client.start_channels()
        client.wait_for_ready(timeout=60)
        self.client = client
        self.keys = []
        outcome = self.execute("%load_ext meridian")
        if outcome.error:
            raise RuntimeError(f"the kernel cannot load meridian: {outcome.error}")

    def _start_retrying(self) -> None:
        """:meth:`_start`, once more if the kernel died before it answered (a loaded machine
        can lose a starting kernel); the second failure says it was the second. A kernel
        spec that does not exist is not retried."""
        from jupyter_client.kernelspec import NoSuchKernel

        try:
            self._start()
        except NoSuchKernel:
            raise
        except Exception as first:  # noqa: BLE001 - retried once, then reported
            self.close()
            try:
                self._start()
            except Exception as second:
                raise RuntimeError(f"{type(second).__name__}: {second} (on a second try; the "
                                   f"first failed with {type(first).__name__}: {first})"
                                   ) from second

    def warm(self) -> None:
        """Start the kernel now if none is running (the page opened; a click will follow)."""
        with self.lock:
            if not self._alive():
                try:
                    self._start_retrying()
                except Exception:  # noqa: BLE001 - the click will start it and say why
                    self.close()

    def close(self) -> None:
        """Stop the kernel (the next run starts a new one)."""
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None
        self.keys = []

    # ------------------------------------------------------------------ cells
    def execute(self, code: str, expressions: dict[str, str] | None = None) -> CellOutcome:
        """Run ``code``, collecting display outputs, printed text and the error, if any."""
        outcome = CellOutcome()
        texts: list[str] = []

        def collect(message: dict) -> None:
            kind, content = message["msg_type"], message["content"]
            if kind in ("display_data", "execute_result"):
                outcome.outputs.append({"data": content.get("data", {}),
                                        "metadata": content.get("metadata", {})})
            elif kind == "stream":
                texts.append(content.get("text", ""))
            elif kind == "error":
                outcome.error = f"{content.get('ename')}: {content.get('evalue')}"

        client = self.client
        msg_id = client.execute(code, allow_stdin=False, user_expressions=expressions or {})
        deadline = time.monotonic() + self.timeout
        while True:  # outputs until the kernel is idle again, watching that it is alive
            try:
                message = client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not self._alive():
                    outcome.error = KERNEL_DIED
                    return outcome
                if time.monotonic() > deadline:
                    from jupyter_core.utils import run_sync

                    run_sync(self.kernel.manager.interrupt_kernel)()
                    outcome.error = (f"the cell ran longer than {self.timeout:g} s and was "
                                     "interrupted")
                    self.keys = []
                    return outcome
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status":
                if message["content"]["execution_state"] == "idle":
                    break
                continue
            collect(message)
        while True:
            try:
                reply = client.get_shell_msg(timeout=10)
            except queue.Empty:
                outcome.error = outcome.error or KERNEL_DIED
                return outcome
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content.get("status") == "error" and outcome.error is None:
            outcome.error = f"{content.get('ename')}: {content.get('evalue')}"
        for key, value in (content.get("user_expressions") or {}).items():
            if value.get("status") == "ok":
                outcome.expressions[key] = value["data"].get("text/plain")
        outcome.text = "".join(texts)
        return outcome

    def run_backtest(self, earlier: list[tuple[int, str]], cell_index: int, source: str,
                     *, name: str, notebook: str, params: dict[str, Any]) -> BacktestOutcome:
        """Run the ``earlier`` cells (``(index, source)``, in order) unless already run, then
        ``source`` as ``%%backtest`` with ``params``; restart a dead kernel first."""
        with self.lock:
            began = time.perf_counter()
            started = False
            wanted: list[str] = []
            for _, code in earlier:
                wanted.append(chain(wanted, code))
            if not self._alive() or self.keys != wanted[:len(self.keys)]:
                try:
                    self._start_retrying()
                except Exception as error:  # noqa: BLE001 - one line for the page
                    self.close()
                    return BacktestOutcome(None, [], f"the kernel {self.kernel_name!r} could "
                                           f"not start: {type(error).__name__}: "
                                           f"{str(error).splitlines()[0] if str(error) else ''}",
                                           [], False, time.perf_counter() - began)
                started = True
            ran: list[int] = []
            for position, (index, code) in enumerate(earlier):
                if position < len(self.keys):
                    continue
                outcome = self.execute(code)
                if outcome.error:
                    self.keys = []  # half-run state: start over next time
                    return BacktestOutcome(None, [], f"cell {index} raised {outcome.error}", ran,
                                           started, time.perf_counter() - began)
                self.keys.append(wanted[position])
                ran.append(index)
            self.execute("_backtest = None")
            line = magic_line(name=name, notebook=notebook, cell_index=cell_index, params=params)
            outcome = self.execute(f"{line}\n{source}", {"run_id": "getattr(_backtest, "
                                                                   "'run_id', None)"})
            if outcome.error == KERNEL_DIED:
                self.keys = []
            run_id = outcome.expressions.get("run_id")
            run_id = run_id.strip("'\"") if run_id and run_id != "None" else None
            sections = [_inert(output) for output in outcome.outputs
                        if "meridian_report" in output["metadata"]]
            error = outcome.error
            if error and error.startswith("UsageError: "):
                error = error[len("UsageError: "):]
            return BacktestOutcome(run_id, sections, error, ran, started,
                                   time.perf_counter() - began)


def session_env(out: Path) -> dict[str, str]:
    """The kernel's environment: runs are saved in ``out`` whoever started the app."""
    return {"MERIDIAN_HOME": str(out)}


def _inert(output: dict[str, Any]) -> dict[str, Any]:
    """A report section as the page may show it: its HTML made inert (the notebook's code
    wrote it; it never runs script on the page that shows it)."""
    from meridian.pages import inert_html

    data = output.get("data") or {}
    if "text/html" in data:
        output = {**output, "data": {**data, "text/html": inert_html(data["text/html"])}}
    return output
