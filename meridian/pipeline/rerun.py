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

RERUNNABLE = ("notebook", "api")


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
    ]
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


def rerun(run_id: str, overrides: dict[str, Any] | None = None,
          output_dir: str | os.PathLike[str] | None = None, on_warning=None) -> Rerun:
    """Run ``run_id`` again (``overrides`` change parameters) and compare. ``on_warning`` is
    called with each drift line before the run starts."""
    original = load_run_by_id(run_id, output_dir)
    kind = original.get("kind") or "notebook"
    if kind not in RERUNNABLE:
        raise RegistryError(f"run {original['run_id'][:8]} is a {kind} run; rerun works for "
                            f"{' and '.join(RERUNNABLE)} runs (rerun a %%backtest cell in its "
                            "notebook)")
    warnings = drift(original)
    for line in warnings:
        if on_warning is not None:
            on_warning(line)
    params = {**(original.get("params") or {}), **(overrides or {})}
    if kind == "notebook":
        from meridian.pipeline.run import run_notebook

        code = original.get("code") or {}
        notebook = code.get("notebook") or original.get("source_path") or \
            original["strategy_name"]
        if not Path(str(notebook)).is_file():
            notebook = original["strategy_name"]
        record = run_notebook(str(notebook), params, output_dir=output_dir,
                              parent_id=original["run_id"])
    else:
        from meridian.api import run_backtest

        settings = dict(original.get("settings") or {})
        capital = settings.pop("initial_capital", 100_000.0)
        data = (original.get("data") or {}).get("path") or None
        if data and Path(data).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
            data = None  # the bundled sample: load it the way the original did
        result = run_backtest(original["strategy_name"], params, initial_capital=capital,
                              data=data, **settings)
        result.parent_id = original["run_id"]
        save_run(result.to_dict(), output_dir)
        record = load_run_by_id(result.run_id, output_dir)
    return Rerun(original, record, warnings,
                 compare(original.get("metrics") or {}, record.get("metrics") or {}))
