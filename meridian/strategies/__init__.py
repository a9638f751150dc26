"""Strategy registry.

A strategy is a module in this package with ``PARAMS`` (parameter name → default) and
``signals(data, **params) -> pd.Series`` of target exposures in [−1, 1], decided at each bar's
close. Any such module is found by its file name, including the ones ``meridian extract``
writes, with no registration step.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from meridian.exceptions import StrategyNotFoundError


def list_strategies() -> list[str]:
    """Names of every strategy module in this package, sorted."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


def get_strategy(name: str) -> ModuleType:
    """The strategy module called ``name``; the error lists the names that exist."""
    available = list_strategies()
    if name not in available:
        raise StrategyNotFoundError(
            f"unknown strategy {name!r}; available strategies: {', '.join(available)}"
        )
    importlib.invalidate_caches()  # a module extracted since start-up must be importable
    module = importlib.import_module(f"{__name__}.{name}")
    if not isinstance(getattr(module, "PARAMS", None), dict) or not callable(
        getattr(module, "signals", None)
    ):
        raise StrategyNotFoundError(
            f"meridian/strategies/{name}.py is not a strategy: it needs a PARAMS dict and a "
            "signals(data, **params) function"
        )
    return module
