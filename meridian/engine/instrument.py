"""What is traded: ``Instrument`` — a futures contract (or any instrument traded in whole
units) with its multiplier, tick, per-contract commission and margin."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from meridian.exceptions import EngineError


@dataclass(frozen=True)
class Instrument:
    """A contract: positions are whole contracts, ``floor(equity × |exposure| / (price ×
    multiplier))`` (no more than ``equity / margin`` when a margin per contract is given), fill
    prices are rounded to ``tick_size``, P&L is contracts × multiplier × price move, and every
    contract traded pays ``commission_per_contract``. E.g. CME E-mini S&P 500:
    ``Instrument(multiplier=50, tick_size=0.25, commission_per_contract=2.5)``."""

    multiplier: float = 1.0
    tick_size: float = 0.0
    commission_per_contract: float = 0.0
    margin: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.multiplier, int | float) and self.multiplier > 0
                and math.isfinite(self.multiplier)):
            raise EngineError(f"Instrument multiplier must be a positive number, got "
                              f"{self.multiplier!r}")
        if not self.tick_size >= 0 or not math.isfinite(self.tick_size):
            raise EngineError(f"Instrument tick_size must be >= 0, got {self.tick_size!r}")
        if not self.commission_per_contract >= 0:
            raise EngineError("Instrument commission_per_contract must be >= 0, got "
                              f"{self.commission_per_contract!r}")
        if self.margin is not None and not self.margin > 0:
            raise EngineError(f"Instrument margin must be positive (or None), got "
                              f"{self.margin!r}")

    def check_prices(self, close: np.ndarray) -> None:
        """Warn when the tick does not fit the prices: larger than 1 % of a typical price
        (probably a typo, e.g. 25 for 0.25)."""
        if not self.tick_size or not len(close):
            return
        typical = float(np.nanmedian(close))
        if self.tick_size > 0.01 * typical:
            warnings.warn(f"tick_size {self.tick_size} is more than 1% of a typical price "
                          f"({typical:.4g}); fills are rounded to it", stacklevel=3)
