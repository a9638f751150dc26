"""``meridian extract``: a strategy notebook's ``export`` cells → an importable strategy module.

The notebook is the single source of truth; the module is what sweeps, the API and production
import. Extraction never runs notebook code: it reads cells with jupytext, checks them with
``ast`` and writes text. What it accepts in an exported cell is what is safe to import:
imports, definitions and constants. ``PARAMS`` are the parameters-cell defaults of the names
``signals`` (and ``exits``, when the strategy defines its exit levels) accept; ``SETTINGS`` are
the parameters cell's run settings (:class:`~meridian.settings.RunSettings` names such
as ``commission`` or ``multiplier``), which sweeps start from, so a sweep gives the rows the
notebook would. Other values (``data_path``) stay in the notebook.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from meridian import project
from meridian._files import write_atomic
from meridian.exceptions import ExtractError, ParameterError
from meridian.parameters import check_rules
from meridian.pipeline.notebooks import (
    exported_constant,
    exported_source,
    notebook_parameters,
    read_notebook,
    source_hash,
)

HEADER = "# Generated from {source} by meridian extract — edit the notebook, not this file."
HASH_LINE = "# Notebook SHA-256: {digest}"
ALLOWED_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                      ast.ClassDef)


@dataclass(frozen=True)
class Extraction:
    """The module text for one notebook and where it goes."""

    notebook: Path
    output: Path
    text: str


def _is_constant(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _check_cell(source: str, where: str) -> ast.Module:
    """Parse an export cell and reject anything that is not safe to import."""
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("%"):
            raise ExtractError(f"{where}, line {number}: `{stripped}` is an IPython magic; "
                               "export cells must be plain Python (move it to another cell)")
        if stripped.startswith("!"):
            raise ExtractError(f"{where}, line {number}: `{stripped}` is a shell escape; "
                               "export cells must be plain Python (move it to another cell)")
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        text = (error.text or "").strip()
        raise ExtractError(f"{where}, line {error.lineno}: syntax error ({error.msg}): `{text}`"
                           ) from None
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ALLOWED_STATEMENTS):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or bare string
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None \
                and _is_constant(node.value):
            continue
        offending = lines[node.lineno - 1].strip()
        raise ExtractError(
            f"{where}, line {node.lineno}: `{offending}` runs code at import; export cells may "
            "only hold imports, definitions and constants"
        )
    return tree


def signals_arguments(trees: list[ast.Module], function: str = "signals"
                      ) -> list[tuple[str, ast.AST | None]] | None:
    """Parameters after ``data`` of the top-level ``def signals(data, ...)`` (or another
    ``function``) in ``trees``: name and default expression (None when it has none); None when
    no such function exists. Shared by extraction (PARAMS) and ``%%backtest`` (the cell's
    parameters): read, never run."""
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == function:
                positional = (node.args.posonlyargs + node.args.args)[1:]
                padding = [None] * (len(positional) - len(node.args.defaults))
                defaults = padding + list(node.args.defaults)
                return [(a.arg, d) for a, d in zip(positional, defaults, strict=True)] + [
                    (a.arg, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults,
                                               strict=True)]
    return None


def signals_defaults(source: str) -> dict[str, Any] | None:
    """The literal defaults of the top-level ``def signals(data, ...)`` in a cell's
    ``source`` (read with ``ast``, never run), or None when the cell defines no such function:
    what ``%%backtest`` and the editor's Run as Backtest offer as the cell's parameters.
    Parameters without a default are left out (the caller cannot pass them); a syntax error
    or a non-literal default is a one-line ParameterError."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        text = (error.text or "").strip()
        raise ParameterError(f"syntax error in the cell, line {error.lineno}: {error.msg}: "
                             f"`{text}`") from None
    arguments = signals_arguments([tree])
    if arguments is None:
        return None
    params = {}
    for name, default in arguments:
        if default is None:
            continue
        try:
            params[name] = ast.literal_eval(default)
        except ValueError:
            raise ParameterError(f"signals parameter {name!r}: its default must be a literal "
                                 "(a number, bool or string)") from None
    return params


def _params(trees, cell_values: dict, source: str) -> dict:
    """PARAMS: the parameters cell's defaults for each argument ``signals`` (and ``exits``)
    accepts."""
    if not cell_values:
        raise ExtractError(f"{source}: no cell tagged 'parameters'; its defaults become PARAMS")
    params = {}
    arguments = signals_arguments(trees)
    if arguments is None:
        raise ExtractError(f"{source}: no `def signals(data, ...)` in the export cells; the "
                           "strategy protocol needs it")
    for name, default in arguments + (signals_arguments(trees, "exits") or []):
        if name in params:
            continue
        if name in cell_values:
            params[name] = cell_values[name].default
        elif default is not None and _is_constant(default):
            params[name] = ast.literal_eval(default)
        else:
            raise ExtractError(
                f"{source}: signals parameter {name!r} has no default in the parameters cell; "
                f"add `{name} = <default>` there"
            )
    return params


def _settings(cell_values: dict, params: dict, source: str) -> dict:
    """SETTINGS: the parameters cell's run settings that differ from their defaults (checked:
    a value the engine would refuse is refused here, not in the middle of a sweep)."""
    from meridian.settings import NAMES, RunSettings

    settings = {name: cell_values[name].default for name in NAMES
                if name in cell_values and name not in params
                and cell_values[name].default is not None}
    try:
        return RunSettings.of(settings).changed()
    except ParameterError as error:
        raise ExtractError(f"{source}: parameters cell: {error}") from None


def _module_docstring(notebook: nbformat.NotebookNode) -> str:
    """The notebook's first markdown cell, as the module's documentation (long lines wrapped)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            text = cell.source.strip().replace("\\", "\\\\").replace('"""', "'''")
            text = re.sub(r"^#+\s*", "", text)  # the title line without its markdown hashes
            lines = [
                textwrap.fill(line, 99, subsequent_indent=_indent(line)) if len(line) > 99
                else line
                for line in text.splitlines()
            ]
            return '"""' + "\n".join(lines) + '\n"""\n'
    return ""


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _split_imports(trees: list[ast.Module], sources: list[str]) -> tuple[str, list[str]]:
    """The imports, hoisted to the top, and the remaining code of each cell.

    The first export cell's leading import block is kept verbatim (its grouping is the
    author's, and what ruff's isort expects); any other import follows, one statement per
    line, unless the same statement is already there.
    """
    first_lines = sources[0].splitlines()
    leading_end = 0
    for node in trees[0].body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            break
        leading_end = node.end_lineno
    block = "\n".join(first_lines[:leading_end]).strip()
    hoisted = [block] if block else []
    bodies: list[str] = []
    seen: set[str] = set()
    for tree, source in zip(trees, sources, strict=True):
        lines = source.splitlines()
        keep = [tree is not trees[0] or index >= leading_end for index in range(len(lines))]
        for node in tree.body:
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            span = range(node.lineno - 1, node.end_lineno)
            statement = "\n".join(lines[i] for i in span)
            if statement not in seen:
                seen.add(statement)
                if node.lineno > leading_end or tree is not trees[0]:
                    hoisted.append(statement)
            for index in span:
                keep[index] = False
        body = "\n".join(line for line, kept in zip(lines, keep, strict=True) if kept).strip()
        if body:
            bodies.append(body)
    return "\n".join(hoisted), bodies


def _literal(value) -> str:
    """Python source for a parameter default, strings in double quotes (the house style)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _dict_literal(name: str, values: dict) -> str:
    items = "".join(f"    {json.dumps(n)}: {_literal(v)},\n" for n, v in values.items())
    return f"{name} = {{\n{items}}}\n" if values else f"{name} = {{}}\n"


def build(notebook_path: str | Path, output: str | Path | None = None) -> Extraction:
    """The module text for ``notebook_path`` (nothing is written or executed)."""
    notebook_path = Path(notebook_path)
    name = notebook_path.stem
    source = project.display_path(notebook_path)
    if not notebook_path.is_file():
        raise ExtractError(f"{source}: no such notebook")
    if notebook_path.suffix not in (".py", ".ipynb"):
        raise ExtractError(f"{source}: not a notebook; extract reads Jupytext .py notebooks "
                           "(or .ipynb)")
    target = _output_path(name, output)
    try:
        notebook = read_notebook(notebook_path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one line, not a traceback
        raise ExtractError(f"{source}: not a readable notebook ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''})") from None
    sources, trees = [], []
    for number, cell in enumerate(notebook.cells, start=1):
        code = exported_source(cell)
        if code is not None:
            trees.append(_check_cell(code, f"{source} cell {number}"))
            sources.append(code)
    if not sources:
        raise ExtractError(f"{source}: no cell tagged 'export'; tag the cell that defines "
                           "signals (# %% tags=[\"export\"]) or start it with #| export")
    cell_values = notebook_parameters(notebook, source)
    params = _params(trees, cell_values, source)
    settings = _settings(cell_values, params, source)
    try:  # the rules must name the strategy's parameters and hold for its defaults
        check_rules(params, exported_constant(notebook, "PARAM_RULES"), source,
                    every_name=True)
    except ParameterError as error:
        raise ExtractError(f"{source}: PARAM_RULES: {error}") from None
    imports, bodies = _split_imports(trees, sources)
    head = (HEADER.format(source=source) + "\n"
            + HASH_LINE.format(digest=source_hash(notebook_path)) + "\n"
            + _module_docstring(notebook))
    top = ((imports + "\n\n" if imports else "") + _dict_literal("PARAMS", params)  # isort
           + "\n# The notebook's run settings other than the defaults (sweeps start from them).\n"
           + _dict_literal("SETTINGS", settings))
    text = head + "\n" + "\n\n\n".join([top.rstrip("\n"), *bodies]) + "\n"
    try:
        compile(ast.parse(text), str(target), "exec")
    except SyntaxError as error:
        raise ExtractError(f"{source}: the generated module does not compile (line "
                           f"{error.lineno}: {error.msg})") from None
    return Extraction(notebook_path, target, text)


def _output_path(name: str, output: str | Path | None) -> Path:
    """Where the module goes: directly in the project's strategies folder, named like a module.

    Nothing is ever written under the installed package (except in Meridian's own source
    checkout, whose strategies folder is the built-in one), nor anywhere else.
    """
    if not name.isidentifier():
        raise ExtractError(f"{name!r} is not a valid Python identifier; name the notebook like "
                           "a module (letters, digits, underscores, not starting with a digit)")
    folder = project.current_project().strategies
    target = Path(output) if output is not None else folder / f"{name}.py"
    resolved = Path(os.path.abspath(target))
    if resolved.parent.resolve() != folder.resolve():
        raise ExtractError(f"output {str(output)!r} is outside the project's strategies folder "
                           f"{folder}; write a module directly inside it, e.g. "
                           f"{project.display_path(folder / (name + '.py'))}")
    if resolved.suffix != ".py" or not resolved.stem.isidentifier() \
            or resolved.stem.startswith("_"):
        raise ExtractError(f"output {str(output)!r} must be a .py file named like a module "
                           "(not starting with an underscore)")
    return resolved


def _generated_from(text: str) -> str | None:
    """The notebook a generated module names in its header, None for a hand-written file."""
    first = text.split("\n", 1)[0]
    prefix, suffix = HEADER.split("{source}")
    if first.startswith(prefix) and first.endswith(suffix):
        return first[len(prefix):len(first) - len(suffix)]
    return None


def diff(extraction: Extraction) -> str:
    """Unified diff from the module on disk (or nothing) to what extraction would write."""
    current = extraction.output.read_text() if extraction.output.exists() else ""
    return "".join(difflib.unified_diff(
        current.splitlines(keepends=True), extraction.text.splitlines(keepends=True),
        fromfile=project.display_path(extraction.output),
        tofile=f"{project.display_path(extraction.output)} (extracted)",
    ))


def _refuse_another_notebooks_name(extraction: Extraction) -> None:
    """A new module named after another notebook of the project (``--output
    strategies/sma_cross.py`` from ``fld.py``) would make that strategy's name run this
    notebook's code: refused, as replacing its module is."""
    name = extraction.output.stem
    if name == extraction.notebook.stem:
        return
    owners = [folder / f"{name}.py" for folder in project.notebook_dirs()]
    other = next((path for path in owners if path.is_file()), None)
    if other is not None:
        raise ExtractError(f"{project.display_path(extraction.output)} would be the module of "
                           f"{project.display_path(other)}, not of "
                           f"{project.display_path(extraction.notebook)}; choose an --output "
                           f"named after this notebook ({extraction.notebook.stem}.py), or "
                           "--force")


def write(extraction: Extraction, force: bool = False) -> bool:
    """Write the module atomically; False when it was already up to date.

    A file that does not start with the generated header was written by hand, and a module
    named after another notebook belongs to that notebook: either is written only with
    ``force``.
    """
    target = extraction.output
    if not target.exists() and not force:
        _refuse_another_notebooks_name(extraction)
    if target.exists():
        current = target.read_text()
        if current == extraction.text:
            return False
        origin = _generated_from(current)
        ours = _generated_from(extraction.text)
        if origin is None and not force:
            raise ExtractError(f"{project.display_path(target)} was not generated by meridian "
                               "extract; refusing to overwrite it (use --force to replace it)")
        if origin is not None and origin != ours and not force:
            raise ExtractError(f"{project.display_path(target)} is the module of {origin}, not "
                               f"of {ours}; refusing to replace another strategy (choose "
                               "another --output, or --force)")
    write_atomic(target, extraction.text)
    return True
