"""Parameter values from the command line and YAML files, checked against a notebook's
parameters cell before any kernel starts (papermill itself only warns on unknown names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import yaml

from meridian.exceptions import ParameterError, shown
from meridian.parameters import check_ranges, check_rules, check_windows, validate_params
from meridian.pipeline.notebooks import Parameter, exported_constant
from meridian.settings import NAMES as SETTING_NAMES
from meridian.settings import RunSettings

MAX_PARAMS_FILE = 1 << 20


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases: ``*name`` repeats a value, so a few lines of nested aliases (a
    "billion laughs") expand to gigabytes; a parameters file never needs them."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: aliases (*name) are not allowed in a "
                                 "parameters file")
        return super().compose_node(parent, index)


def load_params_file(path: str | Path | None) -> dict[str, Any]:
    """A YAML mapping of parameter values (``-f params.yaml``)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"params file {path} does not exist")
    if path.stat().st_size > MAX_PARAMS_FILE:
        raise ParameterError(f"{path}: {path.stat().st_size:,} bytes; a parameters file is at "
                             f"most {MAX_PARAMS_FILE >> 10} KiB of 'name: value' lines")
    try:
        loaded = yaml.load(path.read_text(), Loader=_PlainLoader)  # noqa: S506 - safe, no aliases
    except RecursionError:
        raise ParameterError(f"{path}: values nested too deeply; expected lines like "
                             "'fld_offset: 15'") from None
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
    and ``PARAM_RULES`` (read from its export cells), the run settings (types, ranges,
    choices, dates: one :class:`~meridian.settings.RunSettings`), and the files — a
    ``*_path`` that does not exist, a ``data_path`` that is not a usable OHLCV file, a
    ``cot_path`` that is not a CFTC COT file (or lacks ``cot_market``)."""
    ranges = exported_constant(notebook, "PARAM_RANGES")
    if isinstance(ranges, dict):
        check_ranges(values, ranges, owner)
    check_rules(values, exported_constant(notebook, "PARAM_RULES"), owner)
    RunSettings.of({name: values[name] for name in SETTING_NAMES if name in values})
    for name, value in values.items():
        if name.endswith("_path") and isinstance(value, str) and value:
            try:
                found = Path(value).expanduser().exists()
            except OSError as error:  # a name too long for the file system, …
                raise ParameterError(f"{name}: {shown(value)} is not a usable path "
                                     f"({error.strerror or error})") from None
            if not found:
                raise ParameterError(f"{name}: no such file {shown(value)}")
    windows = exported_constant(notebook, "WINDOWS") or ()
    start, end = values.get("start") or None, values.get("end") or None
    if values.get("data_path") or windows or start or end:
        from meridian.data import load_market_data  # pandas: only when the bars matter
        from meridian.data.ohlcv import load_ohlcv, require_bars
        from meridian.engine.backtest import _window_mask

        given = values.get("data_path")
        bars = (load_ohlcv(Path(given).expanduser()) if given else load_market_data()[0])
        require_bars(bars, given or "the default data")
        check_windows(values, windows, len(bars), owner)
        if start or end:  # a trading window without bars: one line, not a failed run
            _window_mask(bars, start, end)
    if values.get("benchmark"):
        from meridian.tearsheet import load_benchmark

        load_benchmark(Path(str(values["benchmark"])).expanduser())
    if values.get("cot_market") and not values.get("cot_path"):
        raise ParameterError(f"cot_market={values['cot_market']!r} needs cot_path, a CFTC COT "
                             "file holding that market (the sample COT has only one)")
    if values.get("cot_path"):
        from meridian.data import read_cot

        read_cot(Path(values["cot_path"]).expanduser(), market=values.get("cot_market") or None)
