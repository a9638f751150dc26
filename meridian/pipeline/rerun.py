"""``meridian rerun RUN_ID``: the same run again — same notebook (or module), parameters,
settings and data — linked to the original, with a verdict on whether the metrics match.

Before running, what changed since the original is named: the data file's or the notebook's
(module's) SHA-256 differs, or the file is gone. "Same inputs, same result" is then checked,
not assumed: the command says whether every metric is identical, float for float.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meridian._files import file_sha256
from meridian.exceptions import RegistryError
from meridian.storage import load_run_by_id, save_run

RERUNNABLE = ("notebook", "api", "portfolio")


@dataclass
class Rerun:
    """The new run, what changed before it ran, and how its metrics compare."""

    original: dict
    record: dict
    warnings: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.record["status"] == "success" and not self.differences


def _drift(what: str, path: str | None, recorded: str | None) -> str | None:
    if not path or not recorded:
        return None
    if not Path(path).is_file():
        return f"the {what} {path} is gone since the original run"
    now = file_sha256(path)
    if now != recorded:
        return (f"the {what} {path} changed since the original run (SHA-256 {recorded[:12]}… "
                f"then, {now[:12]}… now): the metrics may differ")
    return None


def drift(original: dict) -> list[str]:
    """What differs from the original run's inputs, one line each."""
    data = original.get("data") or {}
    code = original.get("code") or {}
    notebook = code.get("notebook") or original.get("source_path")
    found = [
        _drift("data file", data.get("path") if data.get("sha256") else None, data.get("sha256")),
        _drift("notebook", notebook, code.get("notebook_sha256") or original.get("source_hash")),
        _drift("strategy module", code.get("module"), code.get("module_sha256")),
        _drift("universe", (original.get("universe") or {}).get("path"),
               (original.get("universe") or {}).get("sha256")),
    ]
    for name, market in ((data.get("markets") or {}) if isinstance(data, dict) else {}).items():
        found.append(_drift(f"data file of market {name}", market.get("path"),
                            market.get("sha256")))
    return [line for line in found if line]


def _same(a: Any, b: Any) -> bool:
    missing = (a is None or (isinstance(a, float) and math.isnan(a)))
    return (missing and (b is None or (isinstance(b, float) and math.isnan(b)))) or a == b


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``name: before → after`` for each metric that is not identical."""
    from meridian.engine.metrics import format_metric

    return [f"{name}: {format_metric(name, before.get(name))} → "
            f"{format_metric(name, after.get(name))}"
            for name in dict.fromkeys([*before, *after])
            if not _same(before.get(name), after.get(name))]


@dataclass
class Target:
    """What a run is re-run with: its notebook, or (``api`` runs) its strategy module."""

    original: dict
    notebook: str | None  # None: the strategy module

    def parameters(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Every parameter with its default, and the declared ranges."""
        if self.notebook is not None:
            from meridian.pipeline.notebooks import (
                exported_constant,
                find_notebook,
                read_notebook,
                run_parameters,
            )
            from meridian.settings import RANGES

            notebook = read_notebook(find_notebook(self.notebook))
            ranges = exported_constant(notebook, "PARAM_RANGES")
            defaults = {n: p.default for n, p in run_parameters(notebook).items()}
            return defaults, {**RANGES, **(ranges if isinstance(ranges, dict)
                                                       else {})}
        from meridian.settings import DEFAULTS, RANGES

        module = self._module()
        return ({**module.PARAMS, **{k: v for k, v in DEFAULTS.items() if k not in module.PARAMS}},
                {**RANGES, **getattr(module, "PARAM_RANGES", {})})

    def values(self) -> dict[str, Any]:
        """The original run's value of each parameter (and, for a module, each run setting
        it recorded)."""
        params = dict(self.original.get("params") or {})
        if self.notebook is not None:
            return params
        return {**(self.original.get("settings") or {}), **params}

    def split(self, overrides: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """A module run's parameters and :class:`RunSettings` with ``overrides`` applied."""
        module = self._module()
        params = {**(self.original.get("params") or {}),
                  **{k: v for k, v in overrides.items() if k in module.PARAMS}}
        settings = {**(self.original.get("settings") or {}),
                    **{k: v for k, v in overrides.items() if k not in module.PARAMS}}
        return params, _settings(settings)

    def check(self, overrides: dict[str, Any]) -> None:
        """What ``meridian rerun`` checks before it starts (ParameterError)."""
        if self.notebook is not None:
            from meridian.pipeline.run import prepare

            prepare(self.notebook, {**(self.original.get("params") or {}), **overrides})
            return
        from meridian.strategies import strategy_parameters

        module = self._module()
        params, _ = self.split(overrides)  # the settings: checked as they are built
        strategy_parameters(module, {k: v for k, v in params.items()
                                     if k in module.PARAMS or k in overrides},
                            self.original["strategy_name"])

    def _module(self):
        from meridian.strategies import get_strategy

        return get_strategy(self.original["strategy_name"])


def rerun_target(original: dict) -> Target:
    """The notebook (its recorded path, else the project's notebook of the strategy) or the
    module a run is re-run with."""
    kind = original.get("kind") or "notebook"
    if kind not in RERUNNABLE:
        raise RegistryError(f"run {original['run_id'][:8]} is a {kind} run; rerun works for "
                            f"{' and '.join(RERUNNABLE)} runs (rerun a %%backtest cell in its "
                            "notebook)")
    code = original.get("code") or {}
    if kind == "api" or (kind == "portfolio" and not (code.get("notebook")
                                                       or original.get("source_path"))):
        return Target(original, None)
    from meridian import project
    from meridian.pipeline.notebooks import find_notebook

    recorded = code.get("notebook") or original.get("source_path")
    folders = project.notebook_dirs()
    what = f"run {original['run_id'][:8]}'s notebook"
    if recorded and Path(str(recorded)).is_file():  # never a notebook outside the project's
        return Target(original, str(project.record_path(recorded, folders, what)))
    name = str(original["strategy_name"])
    if not name.isidentifier():
        raise RegistryError(f"{what}: strategy {name!r} is not a notebook name")
    return Target(original, str(project.record_path(find_notebook(name), folders, what)))


def _settings(recorded: dict[str, Any]):
    """A run's recorded settings as :class:`~meridian.settings.RunSettings`; a
    price-level stop (recorded as its description) cannot be rebuilt and is left out."""
    from meridian.settings import RunSettings

    return RunSettings.of({name: value for name, value in recorded.items()
                           if not (isinstance(value, str) and value.startswith("price level"))})


def rerun(run_id: str, overrides: dict[str, Any] | None = None,
          output_dir: str | os.PathLike[str] | None = None, on_warning=None,
          new_run_id: str | None = None) -> Rerun:
    """Run ``run_id`` again (``overrides`` change parameters) and compare. ``on_warning`` is
    called with each drift line before the run starts; ``new_run_id`` names the new run (the
    id ``meridian ui`` gave the re-run when it queued it)."""
    original = load_run_by_id(run_id, output_dir)
    target = rerun_target(original)
    warnings = drift(original)
    universe = (original.get("universe") or {}).get("path") or None
    if original.get("kind") == "portfolio" and not universe:
        raise RegistryError(f"run {original['run_id'][:8]} records no universe file to re-run")
    for line in warnings:
        if on_warning is not None:
            on_warning(line)
    if target.notebook is not None:
        from meridian.pipeline.run import run_notebook

        params = {**(original.get("params") or {}), **(overrides or {})}
        record = run_notebook(target.notebook, params, output_dir=output_dir,
                              parent_id=original["run_id"], run_id=new_run_id,
                              baseline=original.get("params") or {}, universe=universe)
    else:
        from meridian.api import run_backtest, run_portfolio

        params, settings = target.split(overrides or {})
        data = (original.get("data") or {}).get("path") or None
        if data and Path(data).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
            data = None  # the bundled sample: load it the way the original did
        if universe:
            given = {k: v for k, v in (overrides or {}).items() if k not in params}
            result = run_portfolio(original["strategy_name"], universe, params,
                                   settings=settings, **given)  # over the universe's
        else:
            result = run_backtest(original["strategy_name"], params, data=data,
                                  settings=settings)
        result.parent_id = original["run_id"]
        result.changed = [name for name in (overrides or {}) if name in params
                          and (original.get("params") or {}).get(name) != params[name]]
        if new_run_id is not None:
            result.run_id = new_run_id
        save_run(result.to_dict(), output_dir)
        record = load_run_by_id(result.run_id, output_dir)
    return Rerun(original, record, warnings,
                 compare(original.get("metrics") or {}, record.get("metrics") or {}))
