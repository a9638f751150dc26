"""Parameter grids from ``--grid NAME=SPEC``: ``start:stop:step`` (stop included) or ``a,b,c``.

Every name and value is checked against the strategy's ``PARAMS`` before any work starts.
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from meridian.exceptions import ParameterError
from meridian.parameters import coerce, parse_literal, split_assignment


def _decimals(text: str) -> int:
    try:
        exponent = Decimal(text.strip()).as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _range(name: str, spec: str, default: Any, owner: str) -> list:
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
    digits = max(_decimals(p) for p in parts)
    values = [round(start + i * step, digits) for i in range(count)]
    if all(isinstance(v, int) for v in (start, stop, step)):
        values = [int(v) for v in values]
    return [coerce(name, v, default, owner) for v in values]


def parse_spec(name: str, spec: str, default: Any, owner: str) -> list:
    """The values one ``--grid`` option asks for, converted to the default's type."""
    spec = spec.strip()
    if not spec:
        raise ParameterError(f"--grid {name}=: no values; use start:stop:step or a,b,c")
    if ":" in spec and not isinstance(default, str):
        return _range(name, spec, default, owner)
    values = [coerce(name, parse_literal(v.strip()), default, owner) for v in spec.split(",")]
    return list(dict.fromkeys(values))  # duplicates once, order kept


def build_grid(params: dict[str, Any], options: list[str] | tuple[str, ...], owner: str):
    """``(names, combinations)``: the product of every ``NAME=SPEC``; each combination is a
    full parameter dict (defaults for names not in the grid)."""
    axes: dict[str, list] = {}
    for option in options:
        name, spec = split_assignment(option, "--grid", "fld_offset=5:40:1 or fld_offset=5,10")
        if name not in params:
            raise ParameterError(f"unknown parameter {name!r} for {owner}; valid parameters: "
                                 f"{', '.join(params) or '(none)'}")
        if name in axes:
            raise ParameterError(f"--grid {name} is given twice")
        axes[name] = parse_spec(name, spec, params[name], owner)
    names = list(axes)
    combinations = [{**params, **dict(zip(names, values, strict=True))}
                    for values in itertools.product(*axes.values())]
    return axes, combinations
