"""Parameter values from the command line and YAML files, checked against a notebook's
parameters cell before any kernel starts (papermill itself only warns on unknown names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import yaml

from meridian.exceptions import ParameterError
from meridian.parameters import check_ranges, validate_params
from meridian.pipeline.notebooks import Parameter, exported_constant
from meridian.settings import NAMES as SETTING_NAMES
from meridian.settings import RunSettings


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


def preflight(notebook: nbformat.NotebookNode, values: dict[str, Any], owner: str) -> None:
    """Everything checkable before a kernel starts, so a typo costs one line, not a kernel
    start, a failed run and a misleading report: the strategy's declared ``PARAM_RANGES``
    (read from its export cells), the run settings (types, ranges, choices, dates: one
    :class:`~meridian.settings.RunSettings`), and the files — a
    ``*_path`` that does not exist, a ``data_path`` that is not a usable OHLCV file, a
    ``cot_path`` that is not a CFTC COT file (or lacks ``cot_market``)."""
    ranges = exported_constant(notebook, "PARAM_RANGES")
    if isinstance(ranges, dict):
        check_ranges(values, ranges, owner)
    RunSettings.of({name: values[name] for name in SETTING_NAMES if name in values})
    for name, value in values.items():
        if (name.endswith("_path") and isinstance(value, str) and value
                and not Path(value).expanduser().exists()):
            raise ParameterError(f"{name}: no such file {value!r}")
    if values.get("data_path"):
        from meridian.data.ohlcv import load_ohlcv, require_bars  # pandas: only with a file

        require_bars(load_ohlcv(Path(values["data_path"]).expanduser()), values["data_path"])
    if values.get("cot_market") and not values.get("cot_path"):
        raise ParameterError(f"cot_market={values['cot_market']!r} needs cot_path, a CFTC COT "
                             "file holding that market (the sample COT has only one)")
    if values.get("cot_path"):
        from meridian.data import read_cot

        read_cot(Path(values["cot_path"]).expanduser(), market=values.get("cot_market") or None)
