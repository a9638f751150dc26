"""``meridian ui``'s Notebooks pages: a strategy notebook's cells, Run as Backtest, edit and save.

``/notebooks`` lists the project's notebooks (and the shipped examples, read-only);
``/notebooks/<name>`` shows one as jupytext reads it — Markdown rendered, code editable, the
parameters cell as a form — with a **Run as Backtest** button on every code cell that defines
``signals(data, ...)`` (the rule of ``%%backtest``). Everything a click needs is checked here
before a kernel is involved: the cell, each parameter's type and range, the parameters form.
The cell then runs in the notebook's warm kernel (:mod:`meridian.pipeline.session`) as
``%%backtest``, so it is recorded like any other run (kind ``cell``, with the notebook, the
cell index and the cell's SHA-256).

Saving edits goes through :mod:`meridian.authoring.edit` (jupytext; every byte outside the
edited cells kept; refused when the file changed on disk since the page loaded), and the page
shows whether ``meridian extract --check`` would call the strategy module stale.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from meridian import project
from meridian.authoring import edit
from meridian.authoring.extract import build, diff, signals_defaults, write
from meridian.dashboard.reruns import FormErrors, field_of, field_text, typed_field
from meridian.exceptions import (
    ExtractError,
    MeridianError,
    NotebookNotFoundError,
    ParameterError,
)
from meridian.parameters import check_ranges, coerce
from meridian.pipeline.notebooks import (
    exported_constant,
    list_notebooks,
    notebook_parameters,
    parameters_cell,
)
from meridian.pipeline.parameterize import preflight
from meridian.pipeline.session import Session, session_env
from meridian.strategies import strategy_sources


def find(name: str) -> tuple[Path, bool]:
    """The notebook called ``name`` and whether it may be edited (it is the project's, not an
    example inside the installed package)."""
    for folder in project.notebook_dirs():
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            if path.stem.lower() == name.lower() and not path.name.startswith("_"):
                return path, folder != project.EXAMPLES_DIR
    raise NotebookNotFoundError(f"no notebook {name!r}; notebooks: "
                           f"{', '.join(list_notebooks()) or '(none)'}")


def listing() -> list[dict[str, Any]]:
    """Every notebook the page can open: name, path, editable."""
    found = []
    for name in list_notebooks():
        path, editable = find(name)
        found.append({"name": name, "path": project.display_path(path), "editable": editable})
    return found


def extract_status(path: Path) -> dict[str, Any]:
    """What ``meridian extract --check`` says of the notebook's strategy module: ``current``,
    ``stale``, ``missing``, or ``none`` (no export cell, or it cannot be extracted: why)."""
    try:
        extraction = build(path)
    except ExtractError as error:
        return {"state": "none", "message": str(error)}
    module = project.display_path(extraction.output)
    if not extraction.output.exists():
        builtin = strategy_sources().get(path.stem.lower())
        use = (f"sweeps and the API use the built-in {builtin.name} until you extract this "
               "notebook" if builtin and builtin.origin == "built-in"
               else "extract it to sweep this strategy")
        return {"state": "missing", "module": module,
                "message": f"{module} does not exist yet: {use}"}
    if diff(extraction):
        return {"state": "stale", "module": module,
                "message": f"{module} is out of date with the notebook (meridian extract "
                           "--check fails): extract it again"}
    return {"state": "current", "module": module, "message": f"{module} is up to date"}


def file_sha256(name: str) -> str:
    """The SHA-256 of the notebook's file as it is on disk now (the page polls it to warn
    that the file changed under it)."""
    path, _ = find(name)
    return edit.text_sha256(edit.read_text(path))


def view(name: str) -> dict[str, Any]:
    """The page's data for notebook ``name``: its cells, the file's SHA-256 (for saves) and
    the strategy module's state."""
    path, editable = find(name)
    where = project.display_path(path)
    text = edit.read_text(path)
    notebook = edit.parse(text, where)
    cells = edit.cells_view(notebook)
    for cell in cells:  # each field shows its value as the server will read it back
        for field in (*cell.get("parameters", ()), *cell.get("signals", ())):
            field["text"] = field_text(field["value"])
    return {"name": path.stem, "path": where, "sha256": edit.text_sha256(text),
            "editable": editable, "cells": cells, "extract": extract_status(path)}


def _texts(body: dict, key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise FormErrors({}, f"{key} must be an object of name → value")
    return {str(k): str(v) for k, v in value.items()}


class Notebooks:
    """The Notebooks pages' state in one ``meridian ui``: a warm kernel per notebook."""

    def __init__(self, out: Path):
        self.out = out
        self.sessions: dict[Path, Session] = {}
        self.guard = threading.Lock()

    def session(self, path: Path) -> Session:
        with self.guard:
            if path not in self.sessions:
                kernel = edit.parse(edit.read_text(path), path.name).metadata.get(
                    "kernelspec", {}).get("name", "python3")
                self.sessions[path] = Session(kernel, cwd=Path.cwd(), env=session_env(self.out),
                                              log_file=project.kernel_log(self.out, path.stem))
            return self.sessions[path]

    def warm(self, name: str) -> None:
        """Start the notebook's kernel in the background (the page just opened: the first
        click should not wait for it)."""
        path, _ = find(name)
        session = self.session(path)
        threading.Thread(target=session.warm, daemon=True).start()

    def restart(self, name: str) -> dict[str, Any]:
        """Stop the notebook's kernel; the next click starts a fresh one and runs the earlier
        cells again (after editing a module the notebook imports, say)."""
        path, _ = find(name)
        session = self.session(path)
        with session.lock:
            session.close()
        return {"restarted": True}

    def close(self) -> None:
        with self.guard:
            for session in self.sessions.values():
                session.close()
            self.sessions.clear()

    # ------------------------------------------------------------------ run
    def run(self, name: str, body: dict) -> dict[str, Any]:
        """Run as Backtest: ``body`` = ``{"cell": i, "params": {name: text}, "settings":
        {parameters-cell name: text}, "sources": {index: text}}`` (sources: unsaved edits).
        Raises FormErrors for anything wrong before a kernel is involved."""
        path, _ = find(name)
        where = project.display_path(path)
        notebook = edit.parse(edit.read_text(path), where)
        sources = _texts(body, "sources")
        for key, source in sources.items():
            if not key.isdigit() or int(key) >= len(notebook.cells):
                raise FormErrors({}, f"{where} has no cell {key}; reload the page")
            notebook.cells[int(key)].source = source
        index = body.get("cell")
        if not isinstance(index, int) or not 0 <= index < len(notebook.cells):
            raise FormErrors({}, f"{where} has no cell {index!r}; reload the page")
        cell = notebook.cells[index]
        try:
            found = signals_defaults(cell.source) if cell.cell_type == "code" else None
        except ParameterError as error:
            raise FormErrors({}, f"cell {index}: {error}") from None
        if found is None:
            raise FormErrors({}, f"cell {index} defines no `def signals(data, ...)`; Run as "
                                 "Backtest backtests that function")
        params = self._params(found, _texts(body, "params"),
                              exported_constant(notebook, "PARAM_RANGES") or {})
        marked = parameters_cell(notebook)
        settings = self._settings(notebook, _texts(body, "settings"))
        try:  # files, dates and ranges of what the page changed: before any kernel
            preflight(notebook, {**settings, **params}, "the notebook")
        except MeridianError as error:
            field = field_of(str(error), [*settings, *params])
            raise FormErrors({field: str(error)} if field else {}, str(error)) from None
        earlier = []
        for position, earlier_cell in enumerate(notebook.cells[:index]):
            if earlier_cell.cell_type != "code":
                continue
            code = earlier_cell.source
            if earlier_cell is marked and settings:
                code += "\n# Parameters from the page\n" + "".join(
                    f"{key} = {value!r}\n" for key, value in settings.items())
            earlier.append((position, code))
        outcome = self.session(path).run_backtest(
            earlier, index, cell.source, name=path.stem, notebook=where, params=params)
        return {"run_id": outcome.run_id, "error": outcome.error, "sections": outcome.sections,
                "ran_cells": outcome.ran_cells, "kernel_started": outcome.kernel_started,
                "seconds": round(outcome.seconds, 3), "params": params}

    @staticmethod
    def _params(defaults: dict[str, Any], texts: dict[str, str], ranges: dict) -> dict:
        unknown = [name for name in texts if name not in defaults]
        if unknown:
            raise FormErrors({}, f"unknown parameter {unknown[0]!r} of signals; its parameters: "
                                 f"{', '.join(defaults) or '(none)'}")
        values, errors = dict(defaults), {}
        for name, text in texts.items():
            try:
                default = defaults[name]
                values[name] = coerce(name, typed_field(name, text, default), default,
                                      "signals")
                check_ranges({name: values[name]}, ranges, "signals")
            except ParameterError as error:
                errors[name] = str(error)
        if errors:
            raise FormErrors(errors)
        return values

    @staticmethod
    def _settings(notebook, texts: dict[str, str]) -> dict[str, Any]:
        """The parameters-form values that differ from the parameters cell's, typed."""
        defaults = {name: p.default for name, p in notebook_parameters(notebook).items()}
        unknown = [name for name in texts if name not in defaults]
        if unknown:
            raise FormErrors({}, f"unknown parameter {unknown[0]!r} in the parameters cell; "
                                 f"valid: {', '.join(defaults) or '(none)'}")
        changed, errors = {}, {}
        for name, text in texts.items():
            if defaults[name] is None or text == field_text(defaults[name]):
                continue  # unchanged, or an expression the form cannot stand for
            try:
                default = defaults[name]
                changed[name] = coerce(name, typed_field(name, text, default), default,
                                       "the notebook")
            except ParameterError as error:
                errors[name] = str(error)
        if errors:
            raise FormErrors(errors)
        return changed

    # ------------------------------------------------------------------ save, extract
    def save(self, name: str, body: dict) -> dict[str, Any]:
        """Save ``{"sha256": <as loaded>, "edits": {index: source}}``; the new view."""
        path, editable = find(name)
        where = project.display_path(path)
        if not editable:
            raise FormErrors({}, f"{where} is an example shipped inside Meridian; `meridian "
                                 "init` copies it into your project, where you can edit it")
        loaded = body.get("sha256")
        if not isinstance(loaded, str):
            raise FormErrors({}, "the save names no sha256 of the file as loaded; reload")
        edits = _texts(body, "edits")
        if not all(key.isdigit() for key in edits):
            raise FormErrors({}, "edits are keyed by cell index")
        edit.save_cells(path, loaded, {int(key): source for key, source in edits.items()})
        return view(name)

    def extract(self, name: str) -> dict[str, Any]:
        """``meridian extract`` for the notebook; its new state."""
        path, editable = find(name)
        if not editable:
            raise FormErrors({}, f"{project.display_path(path)} is a shipped example; extract "
                                 "works on your project's notebooks")
        write(build(path))
        return extract_status(path)



def render(data: dict[str, Any], out: Path) -> str:
    """The HTML of a Notebooks page (the list when ``data`` has no cells, else one notebook).
    plotly.js loads from the outputs folder's shared copy when the first result shows."""
    from meridian.dashboard.page import STATIC
    from meridian.pages import document, plotly_asset, relative_href

    data = {**data, "plotly_src": "/files/" + relative_href(plotly_asset(out), out)}
    title = f"{data['name']} · Meridian notebooks" if "cells" in data else "Meridian notebooks"
    css = (STATIC / "dashboard.css").read_text() + (STATIC / "notebook.css").read_text()
    return document(title, (STATIC / "notebook.html").read_text(),
                    [(STATIC / "notebook.js").read_text()], css=css, data=data, connect=True)
