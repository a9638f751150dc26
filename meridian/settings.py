"""``RunSettings``: every setting of a run, declared once — its type, default, range and doc.

Everything but the strategy's own parameters is a run setting: capital, costs, fill, trading
window, risk-free rate, exits, contract, sizing, leverage, financing and annualization. The
engine, ``run_backtest``, notebooks (``notebook_backtest``), ``%%backtest``, sweeps,
walk-forward, ``meridian rerun``, the ui's forms and the preflight all read this one type, so
the ranges they check and the settings a run records cannot drift apart. A new setting is one
field here plus its use in the simulator.

Notebooks name the settings as parameters-cell variables (``commission = 0.0``); a sweep
takes them with ``--set NAME=VALUE``; Python code passes them as keywords
(``run_backtest("fld", multiplier=50)``) or as a ``RunSettings``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from meridian.exceptions import SettingError

FILLS = ("next_open", "close")
SIZINGS = ("fixed_fraction", "volatility_target", "equal_weight", "risk_parity")
"""How exposure becomes a weight of equity (:mod:`meridian.engine.sizing`); the last two
share one equity across a universe's markets (one market: all of it)."""
REBALANCES = ("on_signal", "daily", "weekly", "monthly")
LEVELS = ("stop_loss", "take_profit")
"""Settings that may also be a price level (a ``pd.Series`` aligned to the data)."""
EXITS = ("stop_loss", "take_profit", "trailing_stop")
"""Settings a sweep varies inside one engine pass (one fraction per combination)."""
CONTRACT = ("multiplier", "tick_size", "commission_per_contract", "margin")
"""The fields of an :class:`~meridian.engine.instrument.Instrument`."""
WINDOW = ("start", "end")
"""The trading window: one per backtest (a sweep's windows come from --split/--walk-forward)."""


def _setting(default: Any, doc: str, bounds: str | None = None,
             choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "range": bounds, "choices": choices})


@dataclass(frozen=True, eq=False)
class RunSettings:
    """How a strategy's positions are traded and measured. Numbers at 0 (or ``""``) are off.

    Build one with :meth:`of` (names checked, text such as ``"50"`` converted, ranges and
    choices checked; a bad value is one :class:`~meridian.exceptions.SettingError` line), or
    ``RunSettings(commission=0.001)`` (checked the same way), and derive others with
    :meth:`replace`.
    """

    initial_capital: float = _setting(100_000.0, "starting equity, in account currency (up to "
                                      "1e15: beyond, equity × returns overflows float64 and "
                                      "metrics turn inf)", "(0, 1e15]")
    commission: float = _setting(0.0, "fraction of traded notional paid on every fill",
                                 "[0, 0.5)")
    slippage: float = _setting(0.0, "fraction by which every fill price moves against you",
                               "[0, 0.5)")
    fill: str = _setting("next_open", "next_open: a decision at t's close fills at t+1's "
                         "open; close: at t's close", choices=FILLS)
    start: str = _setting("", "first date to trade, YYYY-MM-DD (signals still see earlier "
                          "bars); empty = from the first bar")
    end: str = _setting("", "last date to trade, YYYY-MM-DD; empty = to the last bar")
    risk_free_rate: float = _setting(0.0, "annual rate Sharpe and Sortino ratios are measured "
                                     "against", "(-1, 1)")
    stop_loss: Any = _setting(0.0, "exit this fraction below the entry (above, short), or at a "
                              "price level Series; 0 = off", "[0, 1)")
    take_profit: Any = _setting(0.0, "exit this fraction above the entry (below, short), or at "
                                "a price level Series; 0 = off", "[0, 1)")
    trailing_stop: float = _setting(0.0, "exit this fraction from the best price since entry; "
                                    "0 = off", "[0, 1)")
    multiplier: float = _setting(1.0, "contract multiplier; other than 1, positions are whole "
                                 "contracts (50 for ES)", "(0, inf)")
    tick_size: float = _setting(0.0, "fills are rounded to this price increment; 0 = none",
                                "[0, inf)")
    commission_per_contract: float = _setting(0.0, "fee per contract traded, in account "
                                              "currency", "[0, inf)")
    margin: float = _setting(0.0, "margin per contract: at most equity / margin contracts; "
                             "0 = no limit", "[0, inf)")
    sizing: str = _setting("fixed_fraction", "fixed_fraction: exposure × equity; "
                           "volatility_target: scaled to target_volatility; equal_weight, "
                           "risk_parity: shared across a universe's markets", choices=SIZINGS)
    rebalance: str = _setting("on_signal", "on_signal: size a position when its target "
                              "changes; daily, weekly, monthly: also re-size at each period's "
                              "last close", choices=REBALANCES)
    target_volatility: float = _setting(0.0, "annualized volatility volatility_target sizing "
                                        "aims at, e.g. 0.15", "[0, 10)")
    max_leverage: float = _setting(1.0, "cap on exposure × scale (1 = no borrowing)",
                                   "[1, inf)")
    financing_rate: float = _setting(0.0, "annual rate paid on the borrowed part of a position",
                                     "[0, 1)")
    periods_per_year: float = _setting(0.0, "bars per year for annualizing (252 daily); 0 = "
                                       "inferred from the bars' spacing", "[0, 100000]")
    benchmark: str = _setting("", "a file the report measures against (OHLCV, or a date column "
                              "and one of prices or returns); empty = buy & hold of the traded "
                              "series")

    def __post_init__(self) -> None:
        from meridian.parameters import check_dates, check_ranges, coerce

        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is None:
                value = spec.default  # None means "off", as the engine's keywords always did
            elif spec.name in WINDOW and isinstance(value, date):
                value = str(value)  # a date, datetime or Timestamp, as text
            elif not (spec.name in LEVELS and is_series(value)):
                value = _checked(coerce, spec, value)
            object.__setattr__(self, spec.name, value)
            choices = spec.metadata["choices"]
            if choices and value not in choices:
                raise SettingError(f"{spec.name}={value!r} is not supported; use one of "
                                   f"{', '.join(choices)}")
        values = {name: getattr(self, name) for name in NAMES}
        try:
            check_ranges(values, RANGES, "the run settings")
            check_dates(values)
        except SettingError:
            raise
        except Exception as error:  # a ParameterError: the same line, as a SettingError
            raise SettingError(str(error)) from None
        if self.sizing == "volatility_target" and not self.target_volatility:
            raise SettingError("sizing='volatility_target' needs target_volatility, an "
                               "annualized fraction such as 0.15")
        if self.target_volatility and self.sizing != "volatility_target":
            raise SettingError(f"target_volatility={self.target_volatility!r} needs "
                               "sizing='volatility_target'")

    @classmethod
    def of(cls, values: Mapping[str, Any] | RunSettings | None = None, /,
           **more: Any) -> RunSettings:
        """Settings from names and values (``{"multiplier": "50"}`` works: text is read as a
        literal); an :class:`~meridian.engine.instrument.Instrument` may stand for the four
        contract fields as ``instrument``. Unknown names are one line listing the valid ones."""
        base = values if isinstance(values, RunSettings) else None
        if base is None and values is not None and not isinstance(values, Mapping):
            raise SettingError(f"run settings must be a RunSettings or a dict of name → value, "
                               f"got a {type(values).__name__} ({str(values)[:40]!r})")
        given = dict(more) if base is not None else {**dict(values or {}), **more}
        instrument = given.pop("instrument", None)
        if instrument is not None:
            from meridian.engine.instrument import Instrument

            if not isinstance(instrument, Instrument):
                raise SettingError(f"instrument must be an Instrument(multiplier=..., "
                                   f"tick_size=..., commission_per_contract=...), got "
                                   f"{instrument!r}")
            given = {**{name: getattr(instrument, name) or 0.0 for name in CONTRACT}, **given}
        unknown = [name for name in given if name not in NAMES]
        if unknown:
            raise SettingError(f"unknown run setting {unknown[0]!r}; valid settings: "
                               f"{', '.join(NAMES)}")
        if base is not None:
            return dataclasses.replace(base, **given) if given else base
        return cls(**given)

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with ``changes`` (checked like :meth:`of`)."""
        return RunSettings.of(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (a price level stays a Series)."""
        return {name: getattr(self, name) for name in NAMES}

    def changed(self) -> dict[str, Any]:
        """The settings that differ from their defaults."""
        return {name: value for name, value in self.as_dict().items()
                if is_series(value) or value != DEFAULTS[name]}

    def recorded(self) -> dict[str, Any]:
        """What a run records (JSON): capital, costs and fill always, the others when not at
        their default; a price-level stop as a description (its values are in the notebook)."""
        always = {name: getattr(self, name) for name in ("initial_capital", "commission",
                                                          "slippage", "fill")}
        return {**always, **{name: (f"price level ({value.name or 'series'})"
                                    if is_series(value) else value)
                             for name, value in self.changed().items()}}

    @property
    def instrument(self):
        """The :class:`~meridian.engine.instrument.Instrument` the contract fields describe,
        or None when they are all at their defaults (fractional units)."""
        from meridian.engine.instrument import Instrument

        if all(getattr(self, name) == DEFAULTS[name] for name in CONTRACT):
            return None
        return Instrument(self.multiplier, self.tick_size, self.commission_per_contract,
                          self.margin or None)

    def periods(self, index) -> float:
        """Bars per year: ``periods_per_year``, else inferred from the bars' spacing."""
        if self.periods_per_year:
            return self.periods_per_year
        from meridian.engine.metrics import infer_periods_per_year

        return infer_periods_per_year(index)


def is_series(value: Any) -> bool:
    """Whether ``value`` is a pandas Series (a price level), without importing pandas: the
    CLI checks settings before anything heavy loads."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.Series)


def _checked(coerce, spec, value):
    try:
        return coerce(spec.name, value, spec.default, "the run settings")
    except Exception as error:  # a ParameterError: the same line, as a SettingError
        raise SettingError(str(error)) from None


NAMES: tuple[str, ...] = tuple(spec.name for spec in dataclasses.fields(RunSettings))
"""Every run setting's name, in declaration order."""
DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in dataclasses.fields(RunSettings)}
RANGES: dict[str, str] = {spec.name: spec.metadata["range"]
                          for spec in dataclasses.fields(RunSettings) if spec.metadata["range"]}
"""Each numeric setting's interval (what the preflight, sweeps and the ui's forms check)."""
DOCS: dict[str, str] = {spec.name: spec.metadata["doc"] for spec in dataclasses.fields(RunSettings)}
CHOICES: dict[str, tuple[str, ...]] = {spec.name: spec.metadata["choices"]
                                       for spec in dataclasses.fields(RunSettings)
                                       if spec.metadata["choices"]}
"""The settings that take one of a few words (fill, sizing, rebalance)."""


