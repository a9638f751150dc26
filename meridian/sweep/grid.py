"""Parameter grids from ``--grid NAME=SPEC``: ``start:stop:step`` (stop included) or ``a,b,c``.

Every name and value is checked against the strategy's ``PARAMS`` before any work starts, and
the grid's size is known (and bounded by ``--max-combinations``) before a single combination
exists: combinations are never listed, only decoded from their index when a batch needs them,
so a grid of ten million costs no more memory than a grid of ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from meridian.exceptions import ParameterError
from meridian.parameters import check_ranges, coerce, parse_literal, split_assignment

DEFAULT_MAX_COMBINATIONS = 10_000_000
"""Grids larger than this are refused unless ``--max-combinations`` says otherwise."""


def _decimals(text: str) -> int:
    try:
        exponent = Decimal(text.strip()).as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


class TooLarge(Exception):
    """An axis with more values than the whole grid may have."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _range(name: str, spec: str, default: Any, owner: str, limit: int) -> list:
    """``start:stop:step`` with the stop included; floats are rounded to the spec's decimals
    so ``0:1:0.1`` gives 0.3, not 0.30000000000000004."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise ParameterError(f"--grid {name}={spec}: a range is start:stop:step, e.g. 5:40:1")
    start, stop, step = (parse_literal(p) for p in parts)
    if not all(isinstance(v, int | float) and not isinstance(v, bool)
               for v in (start, stop, step)):
        raise ParameterError(f"--grid {name}={spec}: start, stop and step must be numbers")
    if step <= 0 or stop < start:
        raise ParameterError(f"--grid {name}={spec}: needs step > 0 and stop >= start")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > limit:
        raise TooLarge(count)
    digits = max(_decimals(p) for p in parts)
    values = [round(start + i * step, digits) for i in range(count)]
    if all(isinstance(v, int) for v in (start, stop, step)):
        values = [int(v) for v in values]
    return [coerce(name, v, default, owner) for v in values]


def parse_spec(name: str, spec: str, default: Any, owner: str,
               limit: int = DEFAULT_MAX_COMBINATIONS) -> list:
    """The values one ``--grid`` option asks for, converted to the default's type."""
    spec = spec.strip()
    if not spec:
        raise ParameterError(f"--grid {name}=: no values; use start:stop:step or a,b,c")
    if ":" in spec and not isinstance(default, str):
        return _range(name, spec, default, owner, limit)
    values = [coerce(name, parse_literal(v.strip()), default, owner) for v in spec.split(",")]
    return list(dict.fromkeys(values))  # duplicates once, order kept


@dataclass(frozen=True)
class Grid:
    """The product of the ``axes`` (name → values), over the strategy's ``defaults``.

    Combination ``i`` is the i-th element of ``itertools.product(*axes.values())`` (the last
    axis varies fastest), completed with the defaults for parameters not in the grid."""

    defaults: dict[str, Any]
    axes: dict[str, list]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.axes.values())

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def positions(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each axis's value position for the combinations ``indices``."""
        return np.unravel_index(np.asarray(indices, dtype=np.int64), self.shape)

    def combinations(self, indices: np.ndarray) -> list[dict[str, Any]]:
        """Full parameter dicts of the combinations ``indices`` (decoded, never stored)."""
        columns = [[values[p] for p in positions] for values, positions in
                   zip(self.axes.values(), self.positions(indices), strict=True)]
        names = list(self.axes)
        return [{**self.defaults, **dict(zip(names, row, strict=True))}
                for row in zip(*columns, strict=True)] if names else [dict(self.defaults)]

    def columns(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The combinations ``indices`` as one array per parameter, the defaults repeated for
        parameters not in the grid: what a fused sweep reads (no dict per combination)."""
        count = len(indices)
        columns = {name: np.full(count, value) for name, value in self.defaults.items()
                   if name not in self.axes}
        for (name, values), positions in zip(self.axes.items(), self.positions(indices),
                                             strict=True):
            columns[name] = np.asarray(values)[positions]
        return columns

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.combinations(np.array([index]))[0]


def build_grid(params: dict[str, Any], options: list[str] | tuple[str, ...], owner: str,
               max_combinations: int = DEFAULT_MAX_COMBINATIONS,
               ranges: dict[str, str] | None = None) -> Grid:
    """The :class:`Grid` of every ``NAME=SPEC``; a grid of more than ``max_combinations`` is
    refused before any value list is built, naming the count and the flag, and a value outside
    the strategy's ``PARAM_RANGES`` before any work."""
    specs: dict[str, str] = {}
    for option in options:
        name, spec = split_assignment(option, "--grid", "fld_offset=5:40:1 or fld_offset=5,10")
        if name not in params:
            raise ParameterError(f"unknown parameter {name!r} for {owner}; valid parameters: "
                                 f"{', '.join(params) or '(none)'}")
        if name in specs:
            raise ParameterError(f"--grid {name} is given twice")
        specs[name] = spec
    axes: dict[str, list] = {}
    size, counted = 1, 0
    for name, spec in specs.items():
        counted += 1
        try:
            axes[name] = parse_spec(name, spec, params[name], owner,
                                    max(1, max_combinations // size))
        except TooLarge as too_large:
            size *= too_large.count
            break
        size *= len(axes[name])
        if size > max_combinations:
            break
    if size > max_combinations:
        rest = list(specs)[counted:]
        total = f"at least {size:,}" if rest else f"{size:,}"
        raise ParameterError(
            f"the grid has {total} combinations, over --max-combinations "
            f"{max_combinations:,}; narrow a range, or raise --max-combinations")
    for name, values in axes.items():
        for value in values:
            check_ranges({name: value}, ranges or {}, owner)
    return Grid(dict(params), axes)
