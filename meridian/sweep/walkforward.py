"""Walk-forward sweeps: choose on the past, trade the next window, repeat, stitch.

``--walk-forward TRAIN:TEST[:STEP]`` cuts the data into windows: a training part of ``TRAIN``
then a test part of ``TEST`` right after it, the whole moving forward by ``STEP`` (default
``TEST``); with ``--anchored`` every training part starts at the first bar. Durations are bars
(``500:125``) or calendar spans: ``3y``, ``18m``, ``6w``, ``90d``. For each window the grid is
ranked on the training part only and the best combination (by ``--metric``) trades the test
part only. Signals are computed on the whole history — every indicator uses only bars up to
each decision, so it is warm at the start of a test window (no cold start) and no bar of a
test window ever reaches the choice made before it. The test parts, compounded one after the
other, make the stitched out-of-sample equity curve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from meridian.engine._simulate import Simulation
from meridian.engine._trades import TradeArrays
from meridian.engine.backtest import EngineResult
from meridian.exceptions import ParameterError
from meridian.sweep.evaluate import Window

_SPAN = re.compile(r"^\s*(\d+)\s*([ymwd]?)\s*$", re.IGNORECASE)
_OFFSETS = {"y": "years", "m": "months", "w": "weeks", "d": "days"}
MIN_TEST_BARS = 20
"""A last test window cut short by the end of the data is kept only from this many bars."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward window: bar positions (end exclusive) and the dates they span."""

    number: int
    train: tuple[int, int]
    test: tuple[int, int]
    index: pd.DatetimeIndex

    def window(self, part: str) -> Window:
        first, last = getattr(self, part)
        return Window(start=str(self.index[first]), end=str(self.index[last - 1]))

    def dates(self) -> dict[str, str]:
        return {f"{part}_{end}": f"{self.index[bound]:%Y-%m-%d}"
                for part in ("train", "test")
                for end, bound in (("start", getattr(self, part)[0]),
                                   ("end", getattr(self, part)[1] - 1))}


def _advance(index: pd.DatetimeIndex, position: int, span: str, option: str) -> int:
    """The bar position ``span`` after ``position`` (bars, or a calendar span)."""
    found = _SPAN.match(span)
    if not found:
        raise ParameterError(f"--walk-forward {option}: {span!r} is not a duration; use bars "
                             "(500) or a span such as 3y, 18m, 6w, 90d")
    amount, unit = int(found[1]), found[2].lower()
    if amount < 1:
        raise ParameterError(f"--walk-forward {option}: durations must be positive")
    if not unit:
        return position + amount
    target = index[min(position, len(index) - 1)] + pd.DateOffset(**{_OFFSETS[unit]: amount})
    return int(index.searchsorted(target, side="left")) if position < len(index) else \
        position + 1


def _retreat(index: pd.DatetimeIndex, position: int, span: str) -> int:
    """The first bar within ``span`` before ``position`` (bars, or a calendar span)."""
    found = _SPAN.match(span)
    amount, unit = int(found[1]), found[2].lower()
    if not unit:
        return max(0, position - amount)
    target = index[position] - pd.DateOffset(**{_OFFSETS[unit]: amount})
    return int(index.searchsorted(target, side="left"))


def folds(spec: str, index: pd.DatetimeIndex, anchored: bool = False,
          warm_up: int = 0) -> list[Fold]:
    """The windows of ``TRAIN:TEST[:STEP]`` over ``index``. Test windows follow each other from
    the end of the first training part, each ``STEP`` after the last (with the default STEP they
    tile the rest of the data); a training part is the ``TRAIN`` before its test window (from
    the first bar with ``anchored``). The last test window may end early at the last bar; one
    shorter than :data:`MIN_TEST_BARS` or ``warm_up`` bars is dropped (too short to say
    anything).

    Errors (one line each): a malformed spec, a training part longer than the data, a STEP
    shorter than TEST (overlapping test windows), a first training part no longer than
    ``warm_up`` bars (the grid's longest lookback: its indicators would not have produced a
    signal yet), test windows shorter than ``warm_up`` bars. Indicators are warm at every test
    window (they see the bars before it), but a window shorter than the longest lookback cannot
    show one whole cycle of the rule being tested: its out-of-sample figure would be noise."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ParameterError(f"--walk-forward {spec!r}: use TRAIN:TEST or TRAIN:TEST:STEP, e.g. "
                             "3y:1y or 500:125")
    train, test = parts[0], parts[1]
    step = parts[2] if len(parts) == 3 else test
    found: list[Fold] = []
    test_start = _advance(index, 0, train, spec)
    while test_start < len(index):
        test_end = min(_advance(index, test_start, test, spec), len(index))
        if test_end <= test_start or (
                test_end == len(index) and test_end - test_start < max(MIN_TEST_BARS, warm_up)
                and found):
            break
        train_start = 0 if anchored else _retreat(index, test_start, train)
        found.append(Fold(len(found) + 1, (train_start, test_start), (test_start, test_end),
                          index))
        following = _advance(index, test_start, step, spec)
        if following <= test_start:
            break
        test_start = following
    if not found:
        raise ParameterError(
            f"--walk-forward {spec}: the data ({len(index):,} bars, {index[0]:%Y-%m-%d} to "
            f"{index[-1]:%Y-%m-%d}) is shorter than one training part plus a test part")
    overlap = next((f for f, g in zip(found, found[1:], strict=False) if g.test[0] < f.test[1]),
                   None)
    if overlap is not None:
        raise ParameterError(
            f"--walk-forward {spec}: STEP {step} is shorter than TEST {test}, so test windows "
            f"{overlap.number} and {overlap.number + 1} overlap and the stitched run would count "
            "bars twice; use STEP >= TEST (or leave STEP out)")
    short = next((f for f in found if f.test[1] - f.test[0] < warm_up), None)
    if short is not None:
        raise ParameterError(
            f"--walk-forward {spec}: test window {short.number} has "
            f"{short.test[1] - short.test[0]} bars, fewer than the indicator warm-up of {warm_up} "
            "bars (the grid's longest lookback); use longer test windows")
    first_train = found[0].train[1] - found[0].train[0]
    if first_train <= warm_up:
        raise ParameterError(
            f"--walk-forward {spec}: the first training part has {first_train} bars, no more "
            f"than the indicator warm-up of {warm_up} bars (the grid's longest lookback); "
            "use a longer training part")
    return found


def stitch(results: list[EngineResult], capital: float) -> EngineResult:
    """The test windows' results as one run: each window's equity scaled to start where the
    previous one ended (compounding), trades scaled alike and renumbered onto the whole index.
    Every window is flat at its end (the engine closes at the last bar), so the scaling is
    exact."""
    scale = 1.0
    equities, helds, events, trades = [], [], [], []
    offset = 0
    for result in results:
        equities.append(result.sim.equity[:, 0] * scale)
        helds.append(result.sim.held[:, 0])
        events.append(result.sim.event[:, 0])
        arrays = result.trade_arrays
        first = arrays.column == 0
        pick = {name: getattr(arrays, name)[first] if getattr(arrays, name) is not None
                else None for name in arrays.__dataclass_fields__}
        pick["entry_bar"] = pick["entry_bar"] + offset
        pick["exit_bar"] = pick["exit_bar"] + offset
        for name in ("size", "pnl", "commission"):
            pick[name] = pick[name] * scale
        trades.append(pick)
        offset += len(result.index)
        scale = equities[-1][-1] / capital
    equity = np.concatenate(equities)[:, None]
    merged = {name: (None if any(t[name] is None for t in trades)
                     else np.concatenate([t[name] for t in trades]))
              for name in trades[0]}
    index = results[0].index.append([r.index for r in results[1:]])
    close = np.concatenate([r.close for r in results])
    held = np.concatenate(helds)[:, None]
    simulation = Simulation(np.asfortranarray(equity), np.asfortranarray(held),
                            np.concatenate(events)[:, None], np.asfortranarray(equity))
    return EngineResult(index, close, capital, simulation, TradeArrays(**merged),
                        results[0].settings.replace(start="", end=""))


def stability(chosen: list[dict], axes: dict[str, list]) -> dict[str, dict]:
    """For each grid parameter: the value each window chose, how often it changed, and how far
    apart the choices lie relative to the grid's range (0 = always the same value)."""
    found = {}
    for name, values in axes.items():
        picked = [c[name] for c in chosen]
        changes = sum(1 for a, b in zip(picked, picked[1:], strict=False) if a != b)
        spread = None
        numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numeric and len(numeric) == len(values) and max(numeric) > min(numeric):
            spread = (max(picked) - min(picked)) / (max(numeric) - min(numeric))
        found[name] = {"chosen": picked, "changes": changes, "spread": spread}
    return found


def warm_up(axes: dict[str, list]) -> int:
    """The grid's longest lookback, read as its largest integer value of 2 or more (window
    lengths and offsets are integers): shorter training or test windows say nothing."""
    values = [v for values in axes.values() for v in values
              if isinstance(v, int) and not isinstance(v, bool) and v >= 2]
    return max(values, default=0)
