"""Parameter values from the command line and YAML files, checked against a notebook's
parameters cell before any kernel starts (papermill itself only warns on unknown names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meridian.exceptions import ParameterError
from meridian.parameters import validate_params
from meridian.pipeline.notebooks import Parameter


def load_params_file(path: str | Path | None) -> dict[str, Any]:
    """A YAML mapping of parameter values (``-f params.yaml``)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"params file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParameterError(
            f"{path}{where}: not valid YAML ({problem}); expected lines like 'fld_offset: 15'"
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParameterError(
            f"{path}: expected a mapping of parameter names to values, got {type(loaded).__name__}"
        )
    return {str(k): v for k, v in loaded.items()}


def resolve_params(
    parameters: dict[str, Parameter], overrides: dict[str, Any], owner: str
) -> dict[str, Any]:
    """Overrides checked and converted to each default's type; unknown names are an error."""
    defaults = {name: p.default for name, p in parameters.items()}
    merged = validate_params(defaults, overrides, owner)
    return {name: merged[name] for name in overrides}


def preflight(values: dict[str, Any]) -> None:
    """Fail fast on inputs the notebook would only trip over after a kernel start: a
    ``*_path`` that does not exist, and a ``data_path`` that is not a valid OHLCV file."""
    for name, value in values.items():
        if name.endswith("_path") and isinstance(value, str) and value:
            if not Path(value).exists():
                raise ParameterError(f"{name}: no such file {value!r}")
            if name == "data_path":
                from meridian.data import load_ohlcv  # pandas: only when there is a file

                load_ohlcv(value)
