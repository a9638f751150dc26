"""Strategy registry: the project's strategy modules first, then the built-in ones.

A strategy is a module with ``PARAMS`` (parameter name → default) and
``signals(data, **params) -> pd.Series`` of target exposures in [−1, 1], decided at each bar's
close. Optionally: ``exits(data, **params) -> {"stop_loss": Series, ...}``, price levels the
engine exits at (the FLD line as the stop; NaN or ``{}``: none), ``PARAM_RANGES`` and
``SETTINGS``, the notebook's own run settings (``meridian extract`` writes them), which sweeps
start from. Each function receives the parameters it names.

Modules are found by file name — in the project's ``strategies/`` folder (where
``meridian extract`` writes) and then in this package — with no registration step and no need
to be importable from ``sys.path``: project modules are loaded from their file. Names are
case-insensitive (``"FLD"`` is ``fld``). A project module with a built-in's name wins, and
``meridian strategies`` says so.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from meridian import project
from meridian.exceptions import EngineError, StrategyNotFoundError, shown

PROJECT_PACKAGE = "meridian_project_strategies"
"""The name project modules are registered under in ``sys.modules`` (for pickling)."""


@dataclass(frozen=True)
class StrategySource:
    """Where a strategy's module lives: ``origin`` is ``project`` or ``built-in``."""

    name: str
    path: Path
    origin: str
    shadows_builtin: bool = False


def _modules(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem.lower(): p for p in sorted(folder.glob("*.py"))
            if not p.name.startswith("_") and p.stem.isidentifier()}


def strategy_sources() -> dict[str, StrategySource]:
    """Lower-cased name → :class:`StrategySource`, the project's modules winning."""
    found: dict[str, StrategySource] = {}
    for origin, folder in project.strategy_dirs():
        for key, path in _modules(folder).items():
            if key in found:
                first = found[key]
                found[key] = StrategySource(first.name, first.path, first.origin, True)
                continue
            found[key] = StrategySource(path.stem, path, origin)
    return found


def list_strategies() -> list[str]:
    """Names of every strategy module (project and built-in), sorted."""
    return sorted(source.name for source in strategy_sources().values())


def find_strategy(name: str) -> StrategySource:
    """The source of strategy ``name`` (any case); the error lists the names that exist."""
    sources = strategy_sources()
    source = sources.get(str(name).lower())
    if source is None:
        raise StrategyNotFoundError(
            f"unknown strategy {shown(name)}; available strategies: "
            f"{', '.join(list_strategies()) or '(none)'} (a notebook becomes one with "
            "`meridian extract notebooks/NAME.py`)"
        )
    return source


def get_strategy(name: str) -> ModuleType:
    """The strategy module called ``name`` (see :func:`find_strategy`)."""
    source = find_strategy(name)
    module = load_module(source)
    if not isinstance(getattr(module, "PARAMS", None), dict) or not callable(
        getattr(module, "signals", None)
    ):
        raise StrategyNotFoundError(
            f"{source.path} is not a strategy: it needs a PARAMS dict and a "
            "signals(data, **params) function"
        )
    return module


_loaded: dict[Path, tuple[int, ModuleType]] = {}


def load_module(source: StrategySource) -> ModuleType:
    """Import the module from its file; re-imported when the file changed (a module extracted
    again in a long-lived process, such as ``meridian ui``, must not be stale)."""
    if source.origin == "built-in":
        return importlib.import_module(f"{__name__}.{source.path.stem}")
    stamp = source.path.stat().st_mtime_ns
    cached = _loaded.get(source.path)
    if cached and cached[0] == stamp:
        return cached[1]
    qualified = f"{PROJECT_PACKAGE}.{source.path.stem}"
    spec = importlib.util.spec_from_file_location(qualified, source.path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(qualified, None)
        raise StrategyNotFoundError(f"{source.path} cannot be imported: "
                                    f"{type(error).__name__}: {error}") from None
    _loaded[source.path] = (stamp, module)
    return module


def accepted(function: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``params`` that ``function`` names (all of them when it takes ``**kwargs``): a
    module's ``signals`` and ``exits`` share one parameter list."""
    names = _parameter_names(function)
    if names is None:
        return dict(params)
    return {name: value for name, value in params.items() if name in names}


@functools.lru_cache(maxsize=256)
def _parameter_names(function: Callable[..., Any]) -> frozenset[str] | None:
    """The names ``function`` accepts, None for any (``**kwargs``): read once per function,
    not once per sweep combination."""
    signature = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        return None
    return frozenset(signature)


def exit_levels(exits: Callable[..., Any], data, params: Mapping[str, Any]) -> dict[str, Any]:
    """What ``exits(data, **params)`` returns, checked: a dict of price-level Series aligned
    to ``data`` for ``stop_loss`` and ``take_profit``."""
    import pandas as pd

    from meridian.settings import LEVELS

    levels = exits(data, **accepted(exits, params)) or {}
    if not isinstance(levels, Mapping):
        raise EngineError(f"exits must return a dict such as {{'stop_loss': series}}, got "
                          f"{type(levels).__name__}")
    for name, level in levels.items():
        if name not in LEVELS or not isinstance(level, pd.Series):
            raise EngineError(f"exits returned {name!r}: it may return price-level Series "
                              f"for {' and '.join(LEVELS)} only")
    return dict(levels)


def market_positions(signals: Callable[..., Any], exits: Callable[..., Any] | None,
                     frames: Mapping[str, Any], params: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Each market's target exposure (``signals`` on its own bars) and price-level exits
    (``exits``, when given), with the same ``params``: what a portfolio trades."""
    positions, levels = {}, {}
    for name, frame in frames.items():
        positions[name] = signals(frame, **accepted(signals, params))
        if exits is not None:
            levels[name] = exit_levels(exits, frame, params)
    return positions, levels


def strategy_parameters(module: ModuleType, params: Mapping[str, Any] | None,
                        owner: str) -> dict[str, Any]:
    """``module.PARAMS`` with ``params`` on top: unknown names, wrong types and values outside
    its ``PARAM_RANGES`` or breaking its ``PARAM_RULES`` are one-line ParameterErrors."""
    from meridian.parameters import check_ranges, check_rules, validate_params

    merged = validate_params(module.PARAMS, params, owner=owner)
    check_ranges(merged, getattr(module, "PARAM_RANGES", {}), owner)
    check_rules(merged, getattr(module, "PARAM_RULES", None), owner)
    return merged


def strategy_settings(module: ModuleType, settings=None, **options: Any):
    """The run settings of a sweep or ``meridian backtest`` of ``module``: ``settings`` when it
    is a :class:`~meridian.settings.RunSettings`, else the module's ``SETTINGS`` (its
    notebook's parameters cell, so the rows are what the notebook gives; the defaults for a
    module without) with ``settings`` (a mapping, as ``--set`` gives) and the non-None
    ``options`` (``--capital``, ``--commission``, ``--slippage``) on top."""
    from meridian.settings import RunSettings

    if not isinstance(settings, RunSettings):
        own = getattr(module, "SETTINGS", None) or {}
        if not isinstance(own, Mapping):
            raise StrategyNotFoundError(f"{module.__file__}: SETTINGS must be a dict of run "
                                        "settings")
        settings = RunSettings.of({**own, **dict(settings or {})})
    return settings.replace(**{k: v for k, v in options.items() if v is not None})
