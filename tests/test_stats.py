"""meridian.stats: PSR, DSR, PBO and the bootstrap, on known inputs and by hand."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from meridian.stats import (
    block_bootstrap,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)


def test_pbo_is_high_for_noise_and_near_zero_with_a_real_edge():
    noise = [probability_of_backtest_overfitting(
        np.random.default_rng(seed).normal(0, 0.01, (1600, 64)), n_splits=10) for seed in range(6)]
    assert np.mean(noise) > 0.4
    drift = np.random.default_rng(7).normal(0, 0.01, (1600, 64))
    drift[:, 0] += 0.004
    assert probability_of_backtest_overfitting(drift, n_splits=16) <= 0.05


def test_pbo_by_hand_on_a_tiny_matrix():
    # two blocks of two rows, two combinations. Column 0 shines in block A and fails in B,
    # column 1 the reverse: whichever half is in sample, its winner is last out of sample.
    matrix = np.array([[0.03, 0.0], [0.01, -0.01], [-0.02, 0.02], [-0.01, 0.01]])
    # split 1: IS = block A, winner 0 (Sharpe 1 vs 0.71); OOS its rank is 1 of 2 → ω = 1/3,
    # λ < 0. split 2: IS = block B, winner 1; OOS (block A) rank 1 → λ < 0. PBO = 2/2 = 1.
    assert probability_of_backtest_overfitting(matrix, n_splits=2) == 1.0
    steady = np.array([[0.03, 0.0], [0.01, -0.01], [0.02, -0.02], [0.01, -0.01]])
    # column 0 wins in both blocks: the IS winner is first out of sample, ω = 2/3, λ > 0
    assert probability_of_backtest_overfitting(steady, n_splits=2) == 0.0


def test_pbo_refuses_what_it_cannot_define():
    with pytest.raises(ValueError, match="at least 2 combinations"):
        probability_of_backtest_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="n_splits must be even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), n_splits=5)


def test_psr_matches_the_formula_computed_independently():
    returns = pd.Series(np.random.default_rng(3).normal(0.0008, 0.012, 500))
    values = returns.to_numpy()
    sharpe = values.mean() / values.std(ddof=1)
    centered = values - values.mean()
    skew = (centered ** 3).mean() / (centered ** 2).mean() ** 1.5
    kurt = (centered ** 4).mean() / (centered ** 2).mean() ** 2
    z = (sharpe - 0.02) * math.sqrt(len(values) - 1) / math.sqrt(
        1 - skew * sharpe + (kurt - 1) / 4 * sharpe ** 2)
    assert probabilistic_sharpe_ratio(returns, 0.02) == pytest.approx(NormalDist().cdf(z),
                                                                       rel=1e-9)


def test_the_expected_maximum_sharpe_of_the_paper():
    # SR0 = √V ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), here with NormalDist's Φ⁻¹
    gamma = 0.5772156649015329
    for trials, variance in ((10, 0.5), (100, 0.0004), (1000, 1.0)):
        expected = math.sqrt(variance) * ((1 - gamma) * NormalDist().inv_cdf(1 - 1 / trials)
                                          + gamma * NormalDist().inv_cdf(1 - 1 / (trials * math.e)))
        assert expected_maximum_sharpe(trials, variance) == pytest.approx(expected, rel=1e-9)
    assert expected_maximum_sharpe(1, 0.5) == 0.0


def test_dsr_falls_with_trials_and_stays_below_psr():
    returns = pd.Series(np.random.default_rng(7).normal(0.0005, 0.01, 1250))
    psr = probabilistic_sharpe_ratio(returns, 0.0)
    values = [deflated_sharpe_ratio(returns, n, 0.0004) for n in (2, 5, 20, 100, 1000)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[0] < psr <= 1


def test_undefined_inputs_give_nan_not_errors():
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.01, 0.01]))
    assert math.isnan(probabilistic_sharpe_ratio([0.01]))


def test_bootstrap_bands_are_ordered_and_reproducible():
    returns = np.random.default_rng(1).normal(0.0004, 0.01, 1000)
    bands = block_bootstrap(returns, n_paths=500, seed=5)
    assert bands == block_bootstrap(returns, n_paths=500, seed=5)
    for name in ("max_drawdown", "cagr"):
        assert bands[name]["p5"] <= bands[name]["p50"] <= bands[name]["p95"]
    assert bands["max_drawdown"]["p95"] <= 0


def _bands_of_whole_paths(returns, n_paths, block, seed, periods_per_year=252.0):
    """The bootstrap done the long way: every path compounded bar by bar from the same draws."""
    values = np.maximum(np.asarray(returns, dtype=float), -1.0)
    count = len(values)
    starts = np.random.default_rng(seed).integers(0, count - block + 1,
                                                  size=(n_paths, math.ceil(count / block)))
    picks = (starts[:, :, None] + np.arange(block)).reshape(n_paths, -1)[:, :count]
    paths = np.cumprod(1.0 + values[picks], axis=1)
    peaks = np.maximum.accumulate(np.maximum(paths, 1.0), axis=1)
    drawdowns = (paths / peaks).min(axis=1) - 1.0
    growth = paths[:, -1] ** (periods_per_year / count) - 1.0
    return {name: {f"p{q}": float(np.percentile(samples, q)) for q in (5, 50, 95)}
            for name, samples in (("max_drawdown", drawdowns), ("cagr", growth))}


@pytest.mark.parametrize("count", [2, 3, 19, 20, 21, 57, 1000])
@pytest.mark.parametrize("block", [1, 5, 20, 64])
def test_bootstrap_by_blocks_equals_compounding_every_path_bar_by_bar(count, block):
    returns = np.random.default_rng(count).normal(0.0005, 0.04, count)
    returns[5::11] = -1.0  # ruin inside some blocks, and a loss past everything
    returns[9::13] = -1.3
    got = block_bootstrap(returns, n_paths=64, block=block, seed=count + block)
    want = _bands_of_whole_paths(returns, 64, min(block, count), count + block)
    for name in want:
        for band, value in want[name].items():
            assert got[name][band] == pytest.approx(value, rel=1e-12, abs=1e-12), (name, band)
