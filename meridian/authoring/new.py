"""``meridian new``: a strategy notebook from a template, ready to run and to extract.

Templates are Jupytext notebooks in ``templates/`` that are valid, runnable Python themselves;
the parts ``new`` rewrites sit between ``# meridian:<key>`` and ``# meridian:end`` comment
lines, so a template can be linted and tried like any notebook.
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path
from typing import Any

from meridian.exceptions import ScaffoldError
from meridian.parameters import parse_literal
from meridian.pipeline.notebooks import notebooks_dir
from meridian.strategies import list_strategies

RUN_SETTINGS = ("initial_capital", "commission", "slippage", "data_path", "start", "end",
                "cot_path", "cot_market")
"""Parameters every notebook has; strategy parameters may not reuse these names."""
REGION = re.compile(
    r"^(?P<indent>[ \t]*)# meridian:(?P<key>[\w-]+)\n(?P<body>.*?)^[ \t]*# meridian:end\n",
    re.MULTILINE | re.DOTALL,
)
SCALARS = (bool, int, float, str)


def templates_dir() -> Path:
    """``./templates`` when it exists, else the templates next to the package."""
    local = Path.cwd() / "templates"
    return local.resolve() if local.is_dir() else Path(__file__).resolve().parents[2] / "templates"


def parse_param_options(options: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lookback=20", "threshold=0.5"]`` → ``{"lookback": 20, "threshold": 0.5}``."""
    params: dict[str, Any] = {}
    for option in options:
        name, sep, text = option.partition("=")
        name = name.strip()
        if not sep or not text.strip():
            raise ScaffoldError(f"--param {option!r} needs NAME=DEFAULT, e.g. --param lookback=20")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ScaffoldError(f"--param {name!r}: a parameter name must be a Python identifier")
        if name == "data" or name in RUN_SETTINGS:
            raise ScaffoldError(f"--param {name!r} is reserved; every notebook already has "
                                f"data and {', '.join(RUN_SETTINGS)}")
        if name in params:
            raise ScaffoldError(f"--param {name!r} is given twice")
        value = parse_literal(text)
        if not isinstance(value, SCALARS):
            raise ScaffoldError(f"--param {name}={text}: the default must be a number, a bool "
                                "or a string")
        params[name] = value
    return params


def _literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


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
    """Write ``notebooks/<name>.py`` from ``templates/<template>.py``; never overwrites."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ScaffoldError(f"{name!r} is not a valid strategy name; use a Python identifier "
                            "(letters, digits, underscores, not starting with a digit)")
    target = notebooks_dir() / f"{name}.py"
    if target.exists():
        raise ScaffoldError(f"{target} already exists; pick another name")
    if name in list_strategies():
        raise ScaffoldError(f"a strategy called {name!r} already exists "
                            f"(meridian/strategies/{name}.py); pick another name")
    source = templates_dir() / f"{template}.py"
    if not source.is_file():
        known = sorted(p.stem for p in templates_dir().glob("*.py"))
        raise ScaffoldError(f"unknown template {template!r}; templates: {', '.join(known)}")
    text = render(source.read_text(), name, dict(params or {"lookback": 20}))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as stream:  # "x": fail rather than overwrite
            stream.write(text)
    except FileExistsError:
        raise ScaffoldError(f"{target} already exists; pick another name") from None
    return Path(os.path.relpath(target)) if target.is_relative_to(Path.cwd()) else target
