"""Finding strategy notebooks and reading their parameters, without starting a kernel.

Notebooks are Jupytext percent-format ``.py`` files in the project's ``notebooks/``; the
examples shipped with Meridian answer to names the project does not use.
The ``parameters`` cell is the notebook's signature: each top-level ``name = literal  # help``
line is a parameter whose type is its default's type.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat

from meridian import project
from meridian._files import file_sha256
from meridian.exceptions import ParameterError, StrategyNotFoundError, shown

DEFAULT_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


@dataclass(frozen=True)
class Parameter:
    """One entry of a notebook's parameters cell."""

    name: str
    default: Any
    help: str

    @property
    def type_name(self) -> str:
        return type(self.default).__name__


def _notebooks(directory: Path) -> dict[str, Path]:
    """Lower-cased name → path of the ``.py`` notebooks in one folder."""
    if not directory.is_dir():
        return {}
    return {p.stem.lower(): p for p in sorted(directory.glob("*.py"))
            if not p.name.startswith("_")}


def list_notebooks() -> list[str]:
    """Strategy names: the project's notebooks and the shipped examples, sorted."""
    names: dict[str, str] = {}
    for directory in reversed(project.notebook_dirs()):  # the project's spelling wins
        names.update({key: path.stem for key, path in _notebooks(directory).items()})
    return sorted(names.values())


def find_notebook(strategy: str) -> Path:
    """The notebook of ``strategy`` (any case): the project's ``notebooks/<strategy>.py``, else
    the shipped example of that name, or ``strategy`` itself when it is a path to a notebook."""
    as_path = Path(strategy)
    if as_path.suffix == ".py" and as_path.is_file():
        return as_path.absolute()
    directories = project.notebook_dirs()
    for directory in directories:
        found = _notebooks(directory).get(strategy.lower())
        if found is not None:
            return found.absolute()
    raise StrategyNotFoundError(
        f"unknown strategy {shown(strategy)}; notebooks in {directories[0]} and the examples: "
        f"{', '.join(list_notebooks()) or '(none)'}"
    )


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook as papermill wants it: every cell has ``tags``, a kernelspec is set."""
    notebook = jupytext.read(path)
    notebook.metadata.setdefault("kernelspec", DEFAULT_KERNELSPEC)
    for cell in notebook.cells:
        cell.metadata.setdefault("tags", [])
    return notebook


def source_hash(path: Path) -> str:
    """SHA-256 of the notebook file: which version of the strategy produced a run."""
    return file_sha256(path)


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The first code cell tagged ``parameters`` (papermill's rule), if any."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell
    return None


def _comments(source: str) -> dict[int, str]:
    """Line number → trailing comment text."""
    found: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return found


def notebook_parameters(notebook: nbformat.NotebookNode, owner: str = "notebook") -> dict:
    """Name → :class:`Parameter` for each ``name = literal`` in the parameters cell."""
    cell = parameters_cell(notebook)
    if cell is None:
        return {}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as error:
        raise ParameterError(
            f"{owner}: the parameters cell does not parse (line {error.lineno}: {error.msg})"
        ) from None
    comments = _comments(cell.source)
    found: dict[str, Parameter] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if not isinstance(target, ast.Name) or node.value is None:
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            default = None  # an expression: any value is accepted
        found[target.id] = Parameter(target.id, default, comments.get(node.lineno, ""))
    return found


def run_parameters(notebook: nbformat.NotebookNode, owner: str = "notebook") -> dict:
    """What ``meridian run`` accepts for a notebook: its parameters cell, and — in a notebook
    that backtests through ``notebook_backtest`` (which reads every run setting from the
    notebook's variables) — each :class:`~meridian.settings.RunSettings` name it does
    not declare, at the setting's default, so ``-p sizing volatility_target`` needs no edit."""
    from meridian.settings import DEFAULTS, DOCS

    found = notebook_parameters(notebook, owner)
    if not any(cell.cell_type == "code" and "notebook_backtest(" in cell.source
               for cell in notebook.cells):
        return found
    settings = {name: Parameter(name, default, DOCS[name]) for name, default in DEFAULTS.items()
                if name not in found}
    return {**found, **settings}


NBDEV_EXPORT = re.compile(r"^#\s*\|\s*export\s*$")


def exported_source(cell: nbformat.NotebookNode) -> str | None:
    """The code of a cell marked for export (Jupytext tag or nbdev ``#| export``), else None."""
    if cell.cell_type != "code":
        return None
    lines = cell.source.splitlines()
    if "export" in cell.metadata.get("tags", []):
        return cell.source
    if lines and NBDEV_EXPORT.match(lines[0].strip()):
        return "\n".join(lines[1:])
    return None


def exported_constant(notebook: nbformat.NotebookNode, name: str) -> Any:
    """The literal value of ``name = <literal>`` in the export cells (read, never run), or
    None. How the preflight finds a strategy's ``PARAM_RANGES`` without a kernel."""
    for cell in notebook.cells:
        code = exported_source(cell)
        if code is None:
            continue
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
                try:
                    return ast.literal_eval(node.value)
                except ValueError:
                    return None
    return None


@dataclass(frozen=True)
class ParameterInfo:
    """One row of ``meridian params NAME``: what a run of the notebook accepts."""

    name: str
    type_name: str
    default: Any
    range: str  # an interval, the choices, or ""
    help: str
    kind: str  # "strategy" (its own), "setting" (a run setting the cell sets), "also" (one it
    # accepts at its default without declaring it)


def describe_parameters(strategy: str) -> tuple[list[ParameterInfo], dict[str, str]]:
    """Every parameter ``meridian run STRATEGY`` accepts, read from the notebook (never run):
    its parameters cell, with the range from ``PARAM_RANGES`` (or the run setting's) and the
    help from each line's comment, then the run settings it accepts without declaring them;
    and its ``PARAM_RULES`` (rule → why)."""
    from meridian.settings import CHOICES, DOCS, RANGES

    path = find_notebook(strategy)
    notebook = read_notebook(path)
    ranges = exported_constant(notebook, "PARAM_RANGES")
    ranges = ranges if isinstance(ranges, dict) else {}
    own = notebook_parameters(notebook, path.stem)

    def limits(name: str) -> str:
        if name in ranges:
            return str(ranges[name])
        return "|".join(CHOICES[name]) if name in CHOICES else (RANGES.get(name) or "")

    rows = [ParameterInfo(p.name, p.type_name, p.default, limits(p.name),
                          p.help or DOCS.get(p.name, ""),
                          "setting" if p.name in DOCS else "strategy") for p in own.values()]
    rows += [ParameterInfo(p.name, p.type_name, p.default, limits(p.name), p.help, "also")
             for name, p in run_parameters(notebook, path.stem).items() if name not in own]
    rules = exported_constant(notebook, "PARAM_RULES") or {}
    return rows, dict(rules) if isinstance(rules, dict) else dict.fromkeys(rules, "")
