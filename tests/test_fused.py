"""The fused pass (engine/_fused.py) against the reference: every metric of every column equals
``backtest_batch`` + ``compute_metrics_batch`` (what ``run_backtest`` uses), and a sweep's rows
through a module's ``signals_batch`` equal the one-by-one path's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from meridian.data import load_sample
from meridian.engine import METRIC_NAMES, _fused, backtest_batch, compute_metrics_batch
from meridian.engine.backtest import _window_mask
from meridian.engine.metrics import returns_from_equity
from meridian.indicators import cross_state, cross_states
from meridian.settings import RunSettings
from meridian.strategies import StrategySource
from meridian.sweep.evaluate import Job, Window, _evaluate_fused, evaluate

ROOT = Path(__file__).resolve().parents[1]


def _random_targets(bars: int, count: int, seed: int) -> np.ndarray:
    """Piecewise-constant exposures (long, short, partial, flat), some columns never trading."""
    rng = np.random.default_rng(seed)
    targets = np.zeros((bars, count), order="F")
    for column in range(count):
        if column % 7 == 0:
            continue
        change = rng.random(bars) < rng.uniform(0.002, 0.08)
        levels = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], size=bars)
        targets[:, column] = levels[np.maximum.accumulate(
            np.where(change, np.arange(bars), 0))]
    return targets


def _reference(data: pd.DataFrame, targets: np.ndarray, run: RunSettings):
    result = backtest_batch(data, targets, run)
    metrics = compute_metrics_batch(result)
    returns = returns_from_equity(result.sim.equity, run.initial_capital).astype(np.float32)
    return np.column_stack([metrics[name] for name in METRIC_NAMES]), returns


def _fused_run(data: pd.DataFrame, targets: np.ndarray, run: RunSettings, keep=None):
    rows = _window_mask(data, run.start or None, run.end or None) if run.start or run.end \
        else np.ones(len(data), bool)
    frame = data.loc[rows]
    return _fused.metrics(frame["Open"].to_numpy(), frame["Close"].to_numpy(), frame.index,
                          np.asfortranarray(targets[rows]), run, keep)


def _assert_same(fused: np.ndarray, reference: np.ndarray) -> None:
    for number, name in enumerate(METRIC_NAMES):
        a, b = fused[:, number], reference[:, number]
        same = (a == b) | (np.isnan(a) & np.isnan(b))  # the same float: sums are numpy's
        assert same.all(), (name, np.flatnonzero(~same)[:5], a[~same][:3], b[~same][:3])


@pytest.mark.parametrize("options", [
    {}, {"commission": 0.001, "slippage": 0.0005}, {"fill": "close", "commission": 0.002},
    {"risk_free_rate": 0.03, "start": "2012-01-01", "end": "2016-06-30"},
    {"initial_capital": 1_000.0, "commission": 0.01, "periods_per_year": 260},
], ids=["plain", "costs", "close-fill", "window-rf", "small-account"])
def test_every_metric_of_every_column_equals_the_reference(options):
    data = load_sample()
    targets = _random_targets(len(data), 120, seed=len(options))
    run = RunSettings(**options)
    keep = np.arange(120) % 9 == 0
    fused, kept = _fused_run(data, targets, run, keep)
    rows = _window_mask(data, run.start or None, run.end or None) if run.start else slice(None)
    reference, returns = _reference(data, targets, run)
    _assert_same(fused, reference)
    assert kept.shape == (len(data.loc[rows]), keep.sum())
    np.testing.assert_allclose(kept, returns[:, keep], rtol=1e-6, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=60),
    gaps=st.lists(st.floats(-0.05, 0.05), min_size=60, max_size=60),
    exposures=st.lists(st.sampled_from([-1.0, -0.4, 0.0, 0.5, 1.0]), min_size=60,
                       max_size=60),
    commission=st.sampled_from([0.0, 0.001, 0.05]),
    fill=st.sampled_from(["next_open", "close"]),
)
def test_hypothesis_prices_and_exposures_agree(steps, gaps, exposures, commission, fill):
    """Short, wild series (crashes to near zero, ruin, flat stretches, one or two bars)."""
    close = 100.0 * np.cumprod(1.0 + np.asarray(steps))
    open_ = close * (1.0 + np.asarray(gaps[: len(close)]))
    index = pd.date_range("2020-01-01", periods=len(close), freq="D")
    data = pd.DataFrame({"Open": open_, "High": np.maximum(open_, close),
                         "Low": np.minimum(open_, close), "Close": close}, index=index)
    targets = np.asfortranarray(np.asarray(exposures[: len(close)])[:, None])
    run = RunSettings(commission=commission, fill=fill)
    fused, _ = _fused_run(data, targets, run)
    reference, _ = _reference(data, targets, run)
    _assert_same(fused, reference)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(-0.3, 0.45), min_size=2, max_size=80),
    runs=st.lists(st.tuples(st.sampled_from([-1.0, -0.6, 0.0, 0.7, 1.0]),
                            st.integers(1, 25)), min_size=1, max_size=12),
    fill=st.sampled_from(["next_open", "close"]),
)
@example(steps=[0.0, 0.45, 0.45, 0.45, -0.3, -0.3, -0.3, 0.1, 0.1, 0.0, 0.1, 0.0],
         runs=[(-1.0, 8), (1.0, 4)], fill="next_open")  # ruined, back above, then long
@example(steps=[0.0, 0.45, 0.45, 0.45, -0.3, -0.3, -0.3, 0.1, 0.1, 0.0, 0.1, 0.0],
         runs=[(-1.0, 6), (1.0, 6)], fill="close")
def test_hypothesis_long_runs_ruin_and_recovery_agree(steps, runs, fill):
    """Exposures held for runs of bars (the kernel's unit of work): a short ruined inside a
    run while the price more than doubles, trades after the ruin, runs ending on the last bar
    or on the one before it."""
    close = 100.0 * np.cumprod(1.0 + np.asarray(steps))
    held = np.concatenate([np.full(length, level) for level, length in runs])
    held = np.resize(held, len(close))
    open_ = np.roll(close, 1)
    open_[0] = close[0]
    index = pd.date_range("2020-01-01", periods=len(close), freq="D")
    data = pd.DataFrame({"Open": open_, "High": np.maximum(open_, close),
                         "Low": np.minimum(open_, close), "Close": close}, index=index)
    targets = np.asfortranarray(held[:, None])
    run = RunSettings(commission=0.001, fill=fill)
    fused, _ = _fused_run(data, targets, run)
    reference, _ = _reference(data, targets, run)
    _assert_same(fused, reference)


def test_the_vectorized_kernel_takes_plain_settings_and_the_ordered_one_the_rest():
    index = load_sample().index
    assert _fused.vectorized(RunSettings(commission=0.001), index)
    for options in ({"stop_loss": 0.05}, {"trailing_stop": 0.1}, {"multiplier": 50.0},
                    {"sizing": "volatility_target", "target_volatility": 0.1},
                    {"rebalance": "weekly"}):
        assert not _fused.vectorized(RunSettings(**options), index), options
        assert _fused.fusable(RunSettings(**options)), options
    level = pd.Series(1.0, index=index)
    assert not _fused.fusable(RunSettings(stop_loss=level))  # a strategy's own levels


ORDERED = {
    "stops": {"stop_loss": 0.03, "take_profit": 0.08, "commission": 0.001},
    "trailing": {"trailing_stop": 0.05, "slippage": 0.0005},
    "close-fill": {"fill": "close", "stop_loss": 0.04, "trailing_stop": 0.06},
    "contracts": {"multiplier": 50.0, "tick_size": 0.25, "commission_per_contract": 2.5,
                  "margin": 5_000.0, "initial_capital": 50_000.0, "stop_loss": 0.02},
    "volatility": {"sizing": "volatility_target", "target_volatility": 0.2,
                   "max_leverage": 3.0, "financing_rate": 0.05, "rebalance": "weekly"},
    "window": {"trailing_stop": 0.08, "start": "2011-03-01", "end": "2015-12-31",
               "risk_free_rate": 0.02},
}


@pytest.mark.parametrize("options", ORDERED.values(), ids=ORDERED.keys())
def test_stops_contracts_and_sizing_fused_equal_the_reference(options):
    data = load_sample()
    targets = _random_targets(len(data), 60, seed=len(options) + 7)
    run = RunSettings(**options)
    assert not _fused.vectorized(run, data.index)
    keep = np.arange(60) % 7 == 0
    fused, kept = _fused.sweep_metrics(data, targets, run, keep=keep)
    reference, returns = _reference(data, targets, run)
    _assert_same(fused, reference)
    assert reference[:, METRIC_NAMES.index("num_trades")].sum() > 60  # it did trade
    np.testing.assert_allclose(kept, returns[:, keep], rtol=1e-6, atol=1e-9)


def test_exit_fractions_one_per_column_equal_the_reference():
    data = load_sample()
    targets = _random_targets(len(data), 40, seed=3)
    exits = {"stop_loss": np.tile([0.0, 0.01, 0.03, 0.1], 10),
             "trailing_stop": np.repeat([0.0, 0.05], 20)}
    run = RunSettings(commission=0.0005, take_profit=0.06)
    fused, _ = _fused.sweep_metrics(data, targets, run, exits)
    result = backtest_batch(data, targets, run, exits=exits)
    metrics = compute_metrics_batch(result)
    _assert_same(fused, np.column_stack([metrics[name] for name in METRIC_NAMES]))


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(-0.3, 0.3), min_size=2, max_size=60),
    swings=st.lists(st.floats(0.0, 0.1), min_size=60, max_size=60),
    exposures=st.lists(st.sampled_from([-1.0, -0.4, 0.0, 0.5, 1.0]), min_size=60,
                       max_size=60),
    stop=st.sampled_from([0.0, 0.02, 0.2]),
    trail=st.sampled_from([0.0, 0.05]),
    multiplier=st.sampled_from([1.0, 20.0]),
    fill=st.sampled_from(["next_open", "close"]),
)
def test_hypothesis_stops_and_contracts_agree(steps, swings, exposures, stop, trail,
                                              multiplier, fill):
    """Wild bars (gaps through stops, ruin, one or two bars) with stops and contracts."""
    close = 100.0 * np.cumprod(1.0 + np.asarray(steps))
    swing = np.asarray(swings[: len(close)])
    open_ = np.r_[100.0, close[:-1]]
    data = pd.DataFrame({"Open": open_, "High": np.maximum(open_, close) * (1 + swing),
                         "Low": np.minimum(open_, close) * (1 - swing), "Close": close},
                        index=pd.date_range("2020-01-01", periods=len(close), freq="D"))
    targets = np.asfortranarray(np.asarray(exposures[: len(close)])[:, None])
    options = {"stop_loss": stop, "trailing_stop": trail, "fill": fill, "commission": 0.001}
    if multiplier > 1:
        options.update(multiplier=multiplier, tick_size=0.01, initial_capital=20_000.0)
    run = RunSettings(**options)
    fused, _ = _fused.sweep_metrics(data, targets, run)
    reference, _ = _reference(data, targets, run)
    _assert_same(fused, reference)


@pytest.mark.parametrize("options", [
    {"stop_loss": 0.03, "multiplier": 10.0, "initial_capital": 50_000.0},
    {"sizing": "volatility_target", "target_volatility": 0.15, "trailing_stop": 0.07},
], ids=["stops-contracts", "volatility"])
def test_a_sweep_with_stops_contracts_or_sizing_fuses_and_gives_the_one_by_one_rows(
        tmp_path, options):
    data, windows = load_sample(), (Window(), Window("2010-01-01", "2014-12-31"))
    combinations = [{**combo, "take_profit": take} for combo in FLD_GRID[:6]
                    for take in (0.0, 0.05)]
    keep = np.arange(len(combinations)) % 3 == 0
    run = RunSettings(**options)
    assert _evaluate_fused(data, Job("fld", settings=run), combinations, windows, keep) \
        is not None  # the compiled path did run
    fused = evaluate(data, Job("fld", settings=run), combinations, windows, keep)
    single = evaluate(data, Job("fld", _without_batch(tmp_path, "fld"), run), combinations,
                      windows, keep)
    assert fused[1] == single[1]
    for mine, theirs in zip(fused[0], single[0], strict=True):
        _assert_same(mine, theirs)
    np.testing.assert_allclose(fused[2], single[2], rtol=1e-6, atol=1e-9, equal_nan=True)


def _without_batch(tmp_path: Path, name: str) -> StrategySource:
    """The shipped module less its ``signals_batch``: the one-by-one path, the same logic."""
    text = (ROOT / "meridian" / "strategies" / f"{name}.py").read_text()
    start = text.index("def signals_batch")
    end = text.find("\n\n\n", start)
    end = len(text) if end < 0 else end + 3
    path = tmp_path / f"{name}.py"
    path.write_text(text[:start] + text[end:])
    return StrategySource(name, path, "project")


FLD_GRID = [{"fld_offset": o, "cot_threshold": c, "allow_short": short}
            for o in (3, 10, 17) for c in (-0.5, 0.0, 0.4) for short in (True, False)]


@pytest.mark.parametrize(("name", "combinations", "columns"), [
    ("sma_cross", [{"fast": f, "slow": s} for f in (2, 5, 9, 20) for s in (10, 21, 60)], None),
    ("fld", FLD_GRID, None),
    ("fld", FLD_GRID, ["Open", "High", "Low", "Close"]),  # no COT column: no filter
], ids=["sma_cross", "fld", "fld-without-cot"])
def test_a_sweep_through_signals_batch_gives_the_one_by_one_rows(tmp_path, name,
                                                                 combinations, columns):
    data = load_sample() if columns is None else load_sample()[columns]
    windows = (Window(), Window("2010-01-01", "2014-12-31"))
    keep = np.arange(len(combinations)) % 4 == 0
    run = RunSettings(commission=0.0005)
    fused = evaluate(data, Job(name, settings=run), combinations, windows, keep)
    assert _evaluate_fused(data, Job(name, settings=run), combinations, windows, keep) \
        is not None  # the compiled path did run
    single = evaluate(data, Job(name, _without_batch(tmp_path, name), run), combinations,
                      windows, keep)
    assert fused[1] == single[1]  # the same combinations left out (sma_cross: fast < slow)
    assert any(fused[1]) == (name == "sma_cross")
    for mine, theirs in zip(fused[0], single[0], strict=True):
        _assert_same(mine, theirs)
    np.testing.assert_allclose(fused[2], single[2], rtol=1e-6, atol=1e-9, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(fast=st.lists(st.sampled_from([1.0, 2.0, 3.0, np.nan]), min_size=1, max_size=40),
       slow=st.lists(st.sampled_from([1.0, 2.0, np.nan]), min_size=40, max_size=40))
def test_cross_states_equals_cross_state_column_by_column(fast, slow):
    """The compiled batch behind ``signals_batch``: ties and gaps keep the previous side."""
    fast, slow = np.asarray(fast), np.asarray(slow[: len(fast)])
    lines = np.column_stack([fast, slow])
    batch = cross_states(lines, lines, [0, 1, 0], [1, 0, 0])
    for column, (a, b) in enumerate([(fast, slow), (slow, fast), (fast, fast)]):
        np.testing.assert_array_equal(batch[:, column], cross_state(a, b))


HOSTILE = '''import numpy as np
import pandas as pd

PARAMS = {"lag": 1}


def signals(data, lag=1):
    return pd.Series(np.where(data["Close"].diff(lag) > 0, 1.0, -1.0), index=data.index)


def signals_batch(data, lag):
    return {BATCH}
'''


@pytest.mark.parametrize("batch", ["np.full((len(data), len(lag)), 2.0)",  # out of [-1, 1]
                                   "np.zeros((3, 3))",  # the wrong shape
                                   "1 / 0"],  # raises
                         ids=["out-of-range", "wrong-shape", "raises"])
def test_a_hostile_signals_batch_falls_back_to_the_one_by_one_path(tmp_path, batch):
    path = tmp_path / "hostile.py"
    path.write_text(HOSTILE.replace("{BATCH}", batch))
    plain = tmp_path / "plain" / "hostile.py"
    plain.parent.mkdir()
    plain.write_text(HOSTILE[: HOSTILE.index("\n\ndef signals_batch")] + "\n")
    data, combinations = load_sample(), [{"lag": lag} for lag in (1, 2, 5)]
    job = Job("hostile", StrategySource("hostile", path, "project"))
    assert _evaluate_fused(data, job, combinations, (Window(),), None) is None
    mine = evaluate(data, job, combinations, (Window(),))
    theirs = evaluate(data, Job("hostile", StrategySource("hostile", plain, "project")),
                      combinations, (Window(),))
    assert mine[1] == theirs[1] == [None, None, None]
    _assert_same(mine[0][0], theirs[0][0])


@pytest.mark.parametrize("offset", [0, 3, 8])
def test_pairwise_sum_is_numpys_sum_float_for_float(offset):
    rng = np.random.default_rng(offset)
    for count in [*range(0, 300), 1_000, 2_148, 3_392, 8_191, 8_192, 8_193, 20_000]:
        values = rng.normal(0.0, 1.0, count + offset) * 10.0 ** rng.integers(-8, 8, count + offset)
        assert _fused._pairwise(values, offset, count) == np.sum(values[offset:]), count
