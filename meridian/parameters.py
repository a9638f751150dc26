"""Parameter parsing and validation, shared by the API, the CLI, notebooks runs and sweeps.

A parameter's type is its default's type. Validating before anything runs is the point:
papermill only warns about unknown names, and a typo should cost a one-line error, not a
kernel start and a misleading report.
"""

from __future__ import annotations

import ast
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
