"""Re-runs started from ``meridian ui``: the form's fields, their checks, and the queue.

The form offers one field per parameter of the run's notebook (or strategy module), typed
from its default. A submitted form is checked exactly as ``meridian rerun`` would check it
(the notebook's parameters, ``PARAM_RANGES``, dates and files) before anything is queued; an
error goes back to the field it names. An accepted re-run is recorded at once as ``queued``
(owned by the ui process), then runs as ``meridian rerun ORIGINAL --run-id NEW`` in a child
process, one at a time: the row turns ``running``, then ``success`` or ``failed``. When the
ui stops (Ctrl-C, SIGTERM), the running child is interrupted (it records ``interrupted``) and
queued re-runs are marked ``interrupted``; if the ui is killed outright, the next process to
open the registry marks them (their owner is gone).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meridian import _process, project
from meridian.exceptions import MeridianError, ParameterError, RegistryError
from meridian.parameters import parse_literal
from meridian.pipeline.rerun import RERUNNABLE, rerun_target
from meridian.storage import load_run_by_id, save_run
from meridian.viz import format_param_value


def field_text(value: Any) -> str:
    """A parameter value as its form field shows it (strings bare, others as Python)."""
    return value if isinstance(value, str) else format_param_value(value)


def form(record: dict) -> dict[str, Any]:
    """The re-run form of a run: ``{"kind", "params": [{name, type, value, default, range}]}``,
    or ``{"kind", "refusal"}`` when the run cannot be re-run from here."""
    kind = record.get("kind") or "notebook"
    code = record.get("code") or {}
    if kind == "cell" and code.get("notebook"):
        name = Path(code["notebook"]).stem
        return {"kind": kind, "refusal": f"a cell run: re-run it from its notebook, Notebooks → "
                                          f"{name}, cell {code.get('cell_index')}",
                "notebook": f"/notebooks/{name}"}
    if kind not in RERUNNABLE:
        return {"kind": kind, "refusal": f"a {kind} run cannot be re-run from here (re-run "
                                          "its notebook cell, or its sweep)"}
    try:
        target = rerun_target(record)
        defaults, ranges = target.parameters()
    except MeridianError as error:
        return {"kind": kind, "refusal": str(error)}
    values = target.values()
    return {"kind": kind, "params": [
        {"name": name, "type": type(default).__name__,
         "value": field_text(values.get(name, default)), "default": field_text(default),
         "range": ranges.get(name)}
        for name, default in defaults.items()]}


def typed_field(name: str, text: str, default: Any) -> Any:
    """A form field's text as a value of its parameter (strings stay text, as typed)."""
    if isinstance(default, str):
        return text
    if text.strip() == "":
        raise ParameterError(f"{name} needs a value (a {type(default).__name__})")
    return parse_literal(text)


def field_of(message: str, names: list[str]) -> str | None:
    """The parameter an error message is about: the first one it names."""
    found = [(match.start(), name) for name in names
             if (match := re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message))]
    return min(found)[1] if found else None


def check(record: dict, texts: dict[str, str]) -> dict[str, Any]:
    """The overrides a submitted form asks for (fields whose text differs from the run's),
    checked as ``meridian rerun`` checks them. Raises :class:`FormErrors`."""
    kind = record.get("kind") or "notebook"
    if kind not in RERUNNABLE:
        raise FormErrors({}, f"a {kind} run cannot be re-run from here")
    target = rerun_target(record)
    defaults, _ = target.parameters()
    unknown = [name for name in texts if name not in defaults]
    if unknown:
        raise FormErrors({}, f"unknown parameter {unknown[0]!r}; valid: {', '.join(defaults)}")
    current = target.values()
    overrides: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        text = str(text)
        if text == field_text(current.get(name, defaults[name])):
            continue
        try:
            overrides[name] = typed_field(name, text, defaults[name])
            target.check({name: overrides[name]})  # this field alone: its own error
        except ParameterError as error:
            errors[name] = str(error)
    if errors:
        raise FormErrors(errors)
    try:
        target.check(overrides)  # together: ranges between fields, dates, files
    except ParameterError as error:
        field = field_of(str(error), list(overrides) or list(defaults))
        raise FormErrors({field: str(error)} if field else {}, str(error)) from None
    return overrides


class FormErrors(Exception):
    """Field → one-line error, and a message for the form as a whole."""

    def __init__(self, fields: dict[str, str], message: str | None = None):
        self.fields = fields
        self.message = message or "; ".join(f"{k}: {v}" for k, v in fields.items())
        super().__init__(self.message)


class Queue:
    """Re-runs of one output folder, executed one after the other by a worker thread."""

    def __init__(self, out: Path, on_change=None):
        self.out = out
        self.jobs: deque[tuple[str, str, dict]] = deque()
        self.lock = threading.Lock()
        self.current: subprocess.Popen | None = None
        self.stopping = False
        self.worker: threading.Thread | None = None
        self.on_change = on_change or (lambda run_ids: None)

    def submit(self, original: dict, overrides: dict[str, Any]) -> str:
        """Record the re-run as ``queued`` and start it when its turn comes; its run id."""
        run_id = str(uuid.uuid4())
        save_run({
            "run_id": run_id, "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "strategy_name": original["strategy_name"], "kind": original.get("kind") or
            "notebook", "status": "queued", "name": original.get("name"),
            "params": {**(original.get("params") or {}), **overrides},
            "parent_id": original["run_id"], "owner": _process.identity(),
            "changed": sorted(set(original.get("changed") or []) | set(overrides)),
        }, self.out)
        with self.lock:
            if self.stopping:
                raise RegistryError("meridian ui is stopping; the re-run was not queued")
            self.jobs.append((run_id, original["run_id"], overrides))
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._work, name="meridian-reruns",
                                               daemon=True)
                self.worker.start()
        self.on_change([run_id])
        return run_id

    def _work(self) -> None:
        while True:
            with self.lock:
                if self.stopping or not self.jobs:
                    self.worker = None
                    return
                run_id, original_id, overrides = self.jobs.popleft()
            self._run(run_id, original_id, overrides)

    def _run(self, run_id: str, original_id: str, overrides: dict[str, Any]) -> None:
        folder = project.run_dir(self.out, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        params = folder / "rerun-params.json"
        params.write_text(json.dumps(overrides), encoding="utf-8")
        log = folder / "ui.log"
        with open(log, "w", encoding="utf-8") as stream:
            command = [sys.executable, "-m", "meridian.cli", "rerun", original_id,
                       "--params-file", str(params), "--run-id", run_id,
                       "--output-dir", str(self.out)]
            with self.lock:
                if self.stopping:  # stopped between taking the job and starting it
                    self._interrupted(run_id)
                    return
                self.current = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
            code = self.current.wait()
            with self.lock:
                self.current = None
        try:
            record = load_run_by_id(run_id, self.out)
        except MeridianError:
            return  # deleted meanwhile
        if record["status"] == "queued" and self.stopping:  # stopped before it began
            self._interrupted(run_id)
        elif record["status"] == "queued":  # refused before it began (a changed file)
            lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line]
            save_run({**record, "status": "failed", "owner": None,
                      "error": (lines[-1] if lines else f"meridian rerun exited with {code}")},
                     self.out)
        self.on_change([run_id])

    def _interrupted(self, run_id: str) -> bool:
        """Mark a re-run that never started ``interrupted``; False when it is gone."""
        try:
            record = load_run_by_id(run_id, self.out)
        except MeridianError:
            return False
        save_run({**record, "status": "interrupted", "owner": None,
                  "error": "interrupted: meridian ui stopped before this re-run started"},
                 self.out)
        return True

    def stop(self) -> list[str]:
        """Interrupt the running re-run and mark the queued ones; the ids marked."""
        with self.lock:
            self.stopping = True
            waiting = list(self.jobs)
            self.jobs.clear()
            child = self.current
        if child is not None and child.poll() is None:
            child.terminate()  # SIGTERM: the run records itself as interrupted
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        worker = self.worker
        if worker is not None:
            worker.join(timeout=30)  # it settles the job it had taken
        return [run_id for run_id, _, _ in waiting if self._interrupted(run_id)]
