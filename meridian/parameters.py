"""Parameter parsing and validation, shared by the API, the CLI, notebooks runs and sweeps.

A parameter's type is its default's type. Validating before anything runs is the point:
papermill only warns about unknown names, and a typo should cost a one-line error, not a
kernel start and a misleading report.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from meridian.exceptions import ParameterError


def parse_literal(text: str) -> Any:
    """``"15"`` → 15, ``"False"`` → False, ``"0.2"`` → 0.2, ``"[1, 2]"`` → [1, 2]; other text
    stays a string (so ``-p data_path prices.csv`` needs no quotes)."""
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def split_assignment(text: str, option: str = "parameter", example: str = "fld_offset=15"
                     ) -> tuple[str, str]:
    """``"NAME=VALUE"`` → ``("NAME", "VALUE")`` (both stripped; the value may be empty or hold
    more ``=``). The one place that reads ``NAME=VALUE``: ``run``, ``backtest``, ``new``,
    ``sweep --grid``, ``runs search`` and ``%%backtest`` all come here."""
    name, sep, value = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"{option} {text!r}: use NAME=VALUE, e.g. {example}")
    if not name.isidentifier():
        raise ParameterError(f"{option} {text!r}: {name!r} is not a parameter name (letters, "
                             "digits and underscores, not starting with a digit)")
    return name, value.strip()


def parse_assignments(items: Iterable[str], option: str = "parameter",
                      example: str = "fld_offset=15") -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}``: values parse with :func:`parse_literal`;
    a name given twice is an error (which of the two was meant?)."""
    parsed: dict[str, Any] = {}
    for item in items:
        name, value = split_assignment(item, option, example)
        if not value:
            raise ParameterError(f"{option} {item!r} has no value; use NAME=VALUE, e.g. {example}")
        if name in parsed:
            raise ParameterError(f"{option} {name!r} is given twice")
        parsed[name] = parse_literal(value)
    return parsed


def split_words(text: str, option: str = "--params") -> list[str]:
    """Shell-style words of ``text`` (``'a=1 b="x y"'`` → ``["a=1", "b=x y"]``), for values
    passed through one variable, as ``make run PARAMS=...`` does; nothing is ever executed."""
    import shlex

    try:
        return shlex.split(text or "")
    except ValueError as error:
        raise ParameterError(f"{option} {text!r}: {error} (quote values with spaces, e.g. "
                             'cot_market="CRUDE OIL")') from None


def _type_name(value: Any) -> str:
    return type(value).__name__


def coerce(name: str, value: Any, default: Any, owner: str) -> Any:
    """``value`` converted to the type of ``default`` when that loses nothing, else an error."""
    expected = type(default)

    def wrong() -> ParameterError:
        return ParameterError(
            f"parameter {name!r} of {owner} expects {expected.__name__} (default {default!r}), "
            f"got {value!r} ({_type_name(value)})"
        )

    if default is None:
        return value
    if isinstance(value, str) and expected is not str:
        value = parse_literal(value)
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if expected is int:
        if isinstance(value, bool):
            raise wrong()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise wrong()
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong()
    if expected is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise wrong()
    if isinstance(value, expected):
        return value
    raise wrong()


def validate_params(defaults: dict[str, Any], overrides: dict[str, Any] | None, owner: str) -> dict:
    """Defaults merged with overrides; unknown names and ill-typed values raise ParameterError."""
    if overrides is not None and not isinstance(overrides, Mapping):
        example = next(iter(defaults), "name")
        raise ParameterError(f"parameters for {owner} must be a dict of name → value, e.g. "
                             f"{{{example!r}: ...}}; got a {type(overrides).__name__} "
                             f"({str(overrides)[:40]!r})")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ParameterError(
            f"unknown parameter {unknown[0]!r} for {owner}; valid parameters: "
            f"{', '.join(defaults) or '(none)'}"
        )
    merged = dict(defaults)
    for name, value in overrides.items():
        merged[name] = coerce(name, value, defaults[name], owner)
    return merged


_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?inf|[-+0-9.eE]+)\s*,\s*(-?inf|[-+0-9.eE]+)\s*([\])])\s*$")


def parse_interval(text: str, name: str) -> tuple[float, float, bool, bool]:
    """``"[1, inf)"`` → (1.0, inf, True, False): bounds and whether each is included."""
    match = _INTERVAL.match(str(text))
    if not match:
        raise ParameterError(f"range of {name!r} is {text!r}; write an interval such as "
                             "'[1, inf)' or '(0, 0.5]'")
    low, high = float(match[2]), float(match[3])
    return low, high, match[1] == "[", match[4] == "]"


def check_ranges(values: dict[str, Any], ranges: dict[str, str], owner: str) -> None:
    """Each value named in ``ranges`` (name → interval, e.g. ``{"fld_offset": "[1, inf)"}``)
    must lie in its interval: checks that need no data, run before any kernel or backtest.
    A strategy declares them as ``PARAM_RANGES`` next to its ``PARAMS``."""
    for name, interval in ranges.items():
        if name not in values or isinstance(values[name], bool) \
                or not isinstance(values[name], int | float):
            continue  # only numbers have ranges (a price-level Series, a path: checked elsewhere)
        low, high, closed_low, closed_high = parse_interval(interval, name)
        value = values[name]
        inside = ((value >= low) if closed_low else (value > low)) and (
            (value <= high) if closed_high else (value < high))
        if not inside:
            raise ParameterError(f"{name}={value!r} is out of range for {owner}: it must lie "
                                 f"in {interval}")


_RULE_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not,
               ast.USub, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Name, ast.Load,
               ast.Constant, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_OPERATIONS = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b if b else float("inf"),
}


@functools.lru_cache(maxsize=256)
def _rule_tree(rule: str, owner: str) -> ast.Expression:
    """A rule parsed and checked to be arithmetic and comparisons of names and numbers only:
    a rule is read, never run (it may come from a notebook no one has executed)."""
    try:
        tree = ast.parse(str(rule), mode="eval")
    except SyntaxError:
        tree = None
    if tree is None or any(not isinstance(node, _RULE_NODES) for node in ast.walk(tree)) or any(
            isinstance(node, ast.Constant) and not isinstance(node.value, int | float)
            for node in ast.walk(tree)):
        raise ParameterError(f"{owner} declares the rule {str(rule)!r}, which is not a "
                             "comparison of parameters and numbers, e.g. 'fast < slow'")
    return tree


def check_rules(values: Mapping[str, Any], rules: Iterable[str] | Mapping[str, str] | None,
                owner: str, every_name: bool = False) -> None:
    """A strategy's rules across its parameters, declared as ``PARAM_RULES`` next to
    ``PARAM_RANGES``: ``("fast < slow",)``, or ``{"fast < slow": "why"}`` to say why. Each
    is a comparison of parameter names and numbers (``and``, ``or``, ``not``, ``+ - * /``);
    a combination that breaks one is refused in one line before any kernel or backtest,
    naming the rule and the values. A rule over a name that is not a number here (a price
    level Series, a path) is not checked, nor one over a name ``values`` lacks unless
    ``every_name`` (``meridian extract``: a rule must name the strategy's parameters)."""
    if not rules:
        return
    reasons = rules if isinstance(rules, Mapping) else dict.fromkeys(rules, "")
    for rule, reason in reasons.items():
        tree = _rule_tree(rule, owner)
        names = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)})
        unknown = [name for name in names if name not in values]
        if unknown and not every_name:
            continue
        if unknown:
            raise ParameterError(f"{owner} declares the rule {rule!r} over {unknown[0]!r}, "
                                 f"which is not one of its parameters: {', '.join(values)}")
        if any(not isinstance(values[name], bool | int | float) for name in names):
            continue
        if not bool(_evaluate(tree, values)):
            given = ", ".join(f"{name}={values[name]!r}" for name in names)
            raise ParameterError(f"{given} breaks the rule {rule} of {owner}"
                                 + (f": {reason}" if reason else ""))


def broken_rules(columns: Mapping[str, Any], rules: Iterable[str] | Mapping[str, str] | None,
                 owner: str) -> Any | None:
    """Which combinations break one of ``rules`` (a bool array), the combinations given as one
    array per parameter (a sweep's task): :func:`check_rules`' own :func:`_evaluate` over
    whole arrays at once, where checking 5,000 combinations one by one took longer than
    backtesting them. Rules over a name ``columns`` lacks are skipped, as there; None when a
    rule's values are not all numbers (check those one by one)."""
    import numpy as np

    count = len(next(iter(columns.values()))) if columns else 0
    broken = np.zeros(count, dtype=bool)
    if not rules:
        return broken
    for rule in (rules if isinstance(rules, Mapping) else dict.fromkeys(rules)):
        tree = _rule_tree(rule, owner)
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        if any(name not in columns for name in names):
            continue
        values = {name: np.asarray(columns[name]) for name in names}
        if any(value.dtype.kind not in "biuf" for value in values.values()):
            return None
        with np.errstate(all="ignore"):
            broken |= ~np.asarray(_evaluate(tree, values), dtype=bool)
    return broken


def _evaluate(node: ast.AST, values: Mapping[str, Any]) -> Any:
    """A rule's value for numbers, or element by element for arrays of them (a sweep's
    task): numpy's logical functions in place of ``and``, ``or`` and ``not``."""
    import numpy as np

    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, values)
        return np.logical_not(value) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values), _evaluate(node.right, values)
        if isinstance(node.op, ast.Div) and np.ndim(right):  # as _OPERATIONS: x / 0 is inf
            return np.where(right != 0, left / np.where(right != 0, right, 1), np.inf)
        return _OPERATIONS[type(node.op)](left, right)
    if isinstance(node, ast.BoolOp):
        results = [np.asarray(_evaluate(value, values), dtype=bool) for value in node.values]
        return (np.logical_and if isinstance(node.op, ast.And) else np.logical_or).reduce(
            results)
    left = _evaluate(node.left, values)  # a Compare: a < b <= c holds pairwise
    holds = True
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _evaluate(right_node, values)
        holds = np.logical_and(holds, _OPERATIONS[type(op)](left, right))
        left = right
    return holds


SHORT_WINDOW = 5
"""A window of fewer bars than this (1–4) follows noise: allowed, with a warning."""


def check_windows(values: Mapping[str, Any], windows: Iterable[str], bars: int,
                  owner: str) -> list[str]:
    """The parameters a strategy declares as ``WINDOWS`` (counted in bars: an offset, a moving
    average's length) against the data: a window must leave
    :data:`~meridian.data.ohlcv.MIN_BARS` bars to trade (``fld_offset=10**9`` on 3,392 bars is
    refused in one line, not run into a result of nothing); a window of 1–4 bars is allowed
    with a warning, returned as lines for the run's log."""
    from meridian.data.ohlcv import MIN_BARS

    warnings = []
    for name in windows:
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value > bars - MIN_BARS:
            raise ParameterError(f"{name}={value:,} is too long for the data: {bars:,} bars "
                                 f"leave room for a window of at most {max(bars - MIN_BARS, 0):,}"
                                 f" ({MIN_BARS} bars to trade) in {owner}")
        if value < SHORT_WINDOW:
            warnings.append(f"warning: {name}={value} is a window of {value} bar"
                            f"{'s' * (value != 1)}; windows under {SHORT_WINDOW} bars follow "
                            "noise")
    return warnings


def check_dates(values: dict[str, Any]) -> None:
    """``start`` / ``end`` (when set) are YYYY-MM-DD dates and ``start`` comes before ``end``."""
    from datetime import date

    parsed = {}
    for name in ("start", "end"):
        text = values.get(name)
        if not text:
            continue
        try:
            parsed[name] = date.fromisoformat(str(text).strip()[:10])
        except ValueError:
            raise ParameterError(f"{name}={text!r} is not a date; use YYYY-MM-DD") from None
    if len(parsed) == 2 and parsed["start"] > parsed["end"]:
        raise ParameterError(f"start={values['start']!r} is after end={values['end']!r}")
