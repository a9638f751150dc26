"""No look-ahead, as a property: rewriting the future never changes the past."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.engine import backtest
from meridian.strategies import fld, sma_cross


def _frame(closes: np.ndarray, gaps: np.ndarray) -> pd.DataFrame:
    opens = closes * (1 + gaps)
    return pd.DataFrame(
        {"Open": opens, "High": np.maximum(opens, closes) * 1.01,
         "Low": np.minimum(opens, closes) * 0.99, "Close": closes},
        index=pd.bdate_range("2020-01-01", periods=len(closes)),
    )


@st.composite
def histories(draw):
    n = draw(st.integers(8, 60))
    cut = draw(st.integers(1, n - 2))  # the last bar whose past must not change
    prices = st.floats(10, 1000, allow_nan=False)
    closes = np.array(draw(st.lists(prices, min_size=n, max_size=n)))
    future = np.array(draw(st.lists(prices, min_size=n, max_size=n)))
    gaps = np.array(draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n)))
    targets = np.array(draw(st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]),
                                     min_size=n, max_size=n)))
    other_targets = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 1.0]),
                                           min_size=n, max_size=n)))
    fill = draw(st.sampled_from(["next_open", "close"]))
    costs = draw(st.sampled_from([(0.0, 0.0), (0.001, 0.0005)]))
    return cut, closes, future, gaps, targets, other_targets, fill, costs


@settings(max_examples=200, deadline=None)
@given(histories())
def test_changing_bars_after_t_never_changes_anything_up_to_t(case):
    cut, closes, future, gaps, targets, other_targets, fill, (commission, slippage) = case
    changed_closes = np.concatenate([closes[: cut + 1], future[cut + 1:]])
    changed_targets = np.concatenate([targets[: cut + 1], other_targets[cut + 1:]])
    original = _frame(closes, gaps)
    changed = _frame(changed_closes, gaps)
    changed.iloc[cut + 1:, 0] = future[cut + 1:]  # the opens after t change too
    changed["High"] = changed[["Open", "Close"]].max(axis=1) * 1.01
    changed["Low"] = changed[["Open", "Close"]].min(axis=1) * 0.99

    options = {"commission": commission, "slippage": slippage, "fill": fill}
    a = backtest(original, targets, **options)
    b = backtest(changed, changed_targets, **options)
    np.testing.assert_array_equal(a.positions[: cut + 1], b.positions[: cut + 1])
    np.testing.assert_allclose(a.equity[: cut + 1], b.equity[: cut + 1], rtol=1e-12)
    closed_a = a.trades[a.trades["exit_bar"] <= cut].drop(columns="exit_time")
    closed_b = b.trades[b.trades["exit_bar"] <= cut].drop(columns="exit_time")
    pd.testing.assert_frame_equal(closed_a, closed_b, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 6))
def test_strategy_signals_use_only_the_past(case, offset):
    cut, closes, future, gaps, *_ = case
    original = _frame(closes, gaps)
    changed = _frame(np.concatenate([closes[: cut + 1], future[cut + 1:]]), gaps)
    original["COT_Index"] = np.linspace(-1, 1, len(closes))
    changed["COT_Index"] = np.concatenate([original["COT_Index"][: cut + 1],
                                           -original["COT_Index"][cut + 1:]])
    for signal in (lambda d: fld.signals(d, offset, 0.2),
                   lambda d: sma_cross.signals(d, offset, offset + 3)):
        np.testing.assert_array_equal(signal(original)[: cut + 1], signal(changed)[: cut + 1])
