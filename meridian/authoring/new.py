"""``meridian new``: a strategy notebook from a template, ready to run and to extract.

Templates are Jupytext notebooks (the project's ``templates/`` folder first, then the ones
shipped in the package) that are valid, runnable Python themselves;
the parts ``new`` rewrites sit between ``# meridian:<key>`` and ``# meridian:end`` comment
lines, so a template can be linted and tried like any notebook.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
from pathlib import Path
from typing import Any

from meridian import project
from meridian.exceptions import ParameterError, ScaffoldError
from meridian.parameters import parse_assignments
from meridian.pipeline.notebooks import list_notebooks
from meridian.settings import NAMES as SETTING_NAMES
from meridian.strategies import list_strategies

RESERVED = (*SETTING_NAMES, "data_path", "cot_path", "cot_market", "universe")
"""The run settings (:class:`~meridian.settings.RunSettings`) and the data parameters
every notebook has: strategy parameters may not reuse these names."""
REGION = re.compile(
    r"^(?P<indent>[ \t]*)# meridian:(?P<key>[\w-]+)\n(?P<body>.*?)^[ \t]*# meridian:end\n",
    re.MULTILINE | re.DOTALL,
)
SCALARS = (bool, int, float, str)


def find_template(name: str) -> Path:
    """``<name>.py`` from the project's templates, else from the shipped ones."""
    for folder in project.template_dirs():
        if (folder / f"{name}.py").is_file():
            return folder / f"{name}.py"
    known = sorted({p.stem for folder in project.template_dirs() if folder.is_dir()
                    for p in folder.glob("*.py")})
    raise ScaffoldError(f"unknown template {name!r}; templates: {', '.join(known)}")


def parse_param_options(options: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lookback=20", "threshold=0.5"]`` → ``{"lookback": 20, "threshold": 0.5}``."""
    try:
        params = parse_assignments(options, "--param", "lookback=20")
    except ParameterError as error:
        raise ScaffoldError(str(error)) from None
    for name, value in params.items():
        if keyword.iskeyword(name):
            raise ScaffoldError(f"--param {name!r}: a parameter name must be a Python "
                                "identifier, not a keyword")
        if name == "data" or name in RESERVED:
            raise ScaffoldError(f"--param {name!r} is reserved: data, {', '.join(RESERVED)} are "
                                "the data and run settings every notebook has")
        if not isinstance(value, SCALARS):
            raise ScaffoldError(f"--param {name}={value!r}: the default must be a number, a "
                                "bool or a string")
    return params


def _literal(value: Any) -> str:
    """Python source for a value: a string as a JSON string (a valid Python literal, every
    quote, backslash and control character escaped), anything else as its ``repr``. Never the
    value pasted into the code."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _check_rendered(text: str, params: dict[str, Any]) -> None:
    """Parse the notebook back: each parameter must read as exactly its value, a literal (a
    value that would run as code, or break the file, is refused before anything is written)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        raise ScaffoldError(f"the parameters make the notebook invalid Python (line "
                            f"{error.lineno}: {error.msg})") from None
    found = {node.targets[0].id: node.value for node in tree.body
             if isinstance(node, ast.Assign) and len(node.targets) == 1
             and isinstance(node.targets[0], ast.Name) and node.targets[0].id in params}
    for name, value in params.items():
        try:
            same = name in found and ast.literal_eval(found[name]) == value
        except ValueError:
            same = False
        if not same:
            raise ScaffoldError(f"--param {name}: its value does not read back as the literal "
                                f"{value!r}; nothing was written")


def _regions(name: str, params: dict[str, Any]) -> dict[str, list[str]]:
    """Replacement lines (without indentation) for each marked region of a template."""
    window = next((n for n, v in params.items() if type(v) is int and v >= 2), None)
    return {
        "title": [f"# # {name}"],
        "parameters": [f"{n} = {_literal(v)}  # TODO: what {n} means" for n, v in params.items()],
        "signature": [f"{n}: {type(v).__name__} = {_literal(v)}," for n, v in params.items()],
        "window": [f"window = {window}" if window else "window = 20  # placeholder"],
        "params-dict": [f'"{n}": {n},' for n in params],
    }


def render(template: str, name: str, params: dict[str, Any]) -> str:
    """The template with each ``# meridian:<key>`` region replaced (markers removed)."""
    replacements = _regions(name, params)

    def replace(match: re.Match) -> str:
        key, indent = match["key"], match["indent"]
        if key not in replacements:
            raise ScaffoldError(f"template region 'meridian:{key}' is unknown; known: "
                                f"{', '.join(replacements)}")
        return "".join(f"{indent}{line}\n" for line in replacements[key])

    return REGION.sub(replace, template)


def new_notebook(name: str, params: dict[str, Any] | None = None,
                 template: str = "strategy") -> Path:
    """Write the project's ``notebooks/<name>.py`` from template ``<template>``; never
    overwrites anything."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is not a valid strategy name; use a Python identifier "
                            "(letters, digits, underscores, not starting with a digit)")
    folder = project.current_project().notebooks
    target = folder / f"{name}.py"
    if target.exists():
        raise ScaffoldError(f"{target} already exists; pick another name")
    if name.lower() in {n.lower() for n in list_strategies()}:
        raise ScaffoldError(f"a strategy called {name!r} already exists; pick another name")
    if name.lower() in {n.lower() for n in list_notebooks()}:
        raise ScaffoldError(f"a notebook called {name!r} already exists (an example shipped "
                            "with Meridian); pick another name")
    source = find_template(template)
    params = dict(params or {"lookback": 20})
    text = render(source.read_text(), name, params)
    _check_rendered(text, params)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as stream:  # "x": fail rather than overwrite
            stream.write(text)
    except FileExistsError:
        raise ScaffoldError(f"{target} already exists; pick another name") from None
    return Path(os.path.relpath(target)) if target.is_relative_to(Path.cwd()) else target
