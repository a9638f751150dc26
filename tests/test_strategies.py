"""Strategy registry and the two built-in strategies' rules on small hand-made series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from meridian.exceptions import StrategyNotFoundError
from meridian.indicators import cross_state, forward_fill, shift, sma
from meridian.strategies import fld, get_strategy, list_strategies, sma_cross


def _frame(close, high=None, low=None, cot=None) -> pd.DataFrame:
    close = np.asarray(close, float)
    frame = pd.DataFrame(
        {"Open": close, "High": close if high is None else high,
         "Low": close if low is None else low, "Close": close},
        index=pd.bdate_range("2021-01-04", periods=len(close)),
    )
    if cot is not None:
        frame["COT_Index"] = cot
    return frame


def test_registry_finds_both_strategies():
    assert {"fld", "sma_cross"} <= set(list_strategies())
    assert get_strategy("fld").PARAMS == {"fld_offset": 10, "cot_threshold": 0.0,
                                          "allow_short": True, "fld_stop": False}
    assert get_strategy("sma_cross").PARAMS == {"fast": 10, "slow": 20}


def test_unknown_strategy_lists_the_available_ones():
    with pytest.raises(StrategyNotFoundError, match="available strategies: .*fld.*sma_cross"):
        get_strategy("fdl")


def test_indicators():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(shift(x, 2), [np.nan, np.nan, 1, 2, 3])
    np.testing.assert_array_equal(sma(x, 2), [np.nan, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(forward_fill(np.array([np.nan, 1, np.nan, 2])),
                                  [np.nan, 1, 1, 2])
    with pytest.raises(ValueError, match="look ahead"):
        shift(x, -1)
    # flat until the first cross; touching the line keeps the side
    np.testing.assert_array_equal(
        cross_state([1, 2, 3, 2, 2, 1, 3], [2, 2, 2, 2, 2, 2, 2]), [0, 0, 1, 1, 1, -1, 1]
    )


def test_fld_line_is_the_median_displaced_forward():
    data = _frame([10, 11, 12, 13], high=[11, 12, 13, 14], low=[9, 10, 11, 12])
    np.testing.assert_array_equal(fld.fld_line(data, 2), [np.nan, np.nan, 10, 11])


def test_fld_crosses_and_cot_filter():
    # median = close; FLD(1) = yesterday's close: the close crossing it = the close turning.
    close = [10, 11, 12, 11, 10, 11, 12, 13]
    plain = fld.signals(_frame(close), fld_offset=1)
    np.testing.assert_array_equal(plain, [0, 0, 0, -1, -1, 1, 1, 1])
    long_only = fld.signals(_frame(close), fld_offset=1, allow_short=False)
    np.testing.assert_array_equal(long_only, [0, 0, 0, 0, 0, 1, 1, 1])
    cot = [0.0, 0.0, 0.0, 0.5, -0.5, 0.1, 0.6, np.nan]
    filtered = fld.signals(_frame(close, cot=cot), fld_offset=1, cot_threshold=0.3)
    # short needs COT <= -0.3 (only bar 4), long needs COT >= 0.3 (bar 6); NaN blocks
    np.testing.assert_array_equal(filtered, [0, 0, 0, 0, -1, 0, 1, 0])


def test_fld_rejects_offsets_that_look_ahead():
    with pytest.raises(ValueError, match="fld_offset must be >= 1"):
        fld.signals(_frame([1, 2, 3]), fld_offset=0)


def test_sma_cross_is_always_in_the_market_after_the_first_cross():
    close = [5, 4, 3, 2, 3, 4, 5, 6, 5, 4, 3, 2]
    position = sma_cross.signals(_frame(close), fast=1, slow=3)
    assert (position[:4] == 0).all()
    assert set(position[4:]) <= {-1.0, 1.0}
    np.testing.assert_array_equal(position[4:], [1, 1, 1, 1, -1, -1, -1, -1])
    with pytest.raises(ValueError, match="fast < slow"):
        sma_cross.signals(_frame(close), fast=5, slow=3)
