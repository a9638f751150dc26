"""The tear sheet's figures against a benchmark, and the drawdown periods behind its tables.

Everything here is measured from an equity curve and a benchmark price series on the same bars
(a user's benchmark file or buy & hold of the traded series, see :func:`load_benchmark` and
:func:`aligned`), with the definitions quantstats uses where they are standard. Charts of these
live in :mod:`meridian.viz`; the report lays them out.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from meridian.exceptions import DataError

ROLLING_BETA_BARS = 126  # half a year of daily bars, as quantstats' rolling beta
WORST_DRAWDOWNS = 5


def load_benchmark(path: str | Path) -> pd.Series:
    """A benchmark's prices from ``path``: an OHLCV file (its Close), or a file of one column of
    prices, or of returns (a column whose values are all within ±1 and not all positive is
    returns, compounded into prices from 1). Dates are validated like any bars file; the
    Series is named after the file."""
    from meridian.data.ohlcv import _read_benchmark_column, load_ohlcv

    path = Path(path)
    try:
        close = load_ohlcv(path)["Close"]
    except DataError as error:
        if "missing column" not in str(error):
            raise
        close = _read_benchmark_column(path)
    return close.rename(path.stem)


def benchmark_provenance(path: str | Path) -> dict[str, object]:
    """What a run records of its benchmark file (read and checked here, so a bad one is one
    line before the run): name, absolute path, SHA-256, first and last date."""
    from meridian._files import file_sha256

    prices = load_benchmark(path)
    return {"name": prices.name, "path": str(Path(path).absolute()),
            "sha256": file_sha256(path), "first": prices.index[0].isoformat(),
            "last": prices.index[-1].isoformat()}


def aligned(benchmark: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """The benchmark's price as known at each bar of ``index``: its latest price at or before
    the bar (never a later one), NaN before its first."""
    if benchmark.index.tz is not None and index.tz is None:
        benchmark = benchmark.tz_convert(None)
    elif benchmark.index.tz is None and index.tz is not None:
        benchmark = benchmark.tz_localize(index.tz)
    return benchmark.sort_index().reindex(index, method="ffill")


def returns_of(prices: pd.Series) -> pd.Series:
    """``p_t / p_{t−1} − 1`` per bar, 0 where either price is unknown."""
    return prices.pct_change(fill_method=None).fillna(0.0)


def beta(returns: pd.Series, benchmark: pd.Series) -> float:
    """``β = cov(r, b) / var(b)`` of bar returns (sample covariance, ddof 1)."""
    matrix = np.cov(returns.to_numpy(), benchmark.to_numpy())
    return float(matrix[0, 1] / matrix[1, 1]) if matrix[1, 1] > 0 else math.nan


def alpha(returns: pd.Series, benchmark: pd.Series, periods_per_year: float) -> float:
    """Jensen's alpha, annualized as quantstats does: ``(mean(r) − β·mean(b)) × periods``."""
    slope = beta(returns, benchmark)
    return float((returns.mean() - slope * benchmark.mean()) * periods_per_year)


def correlation(returns: pd.Series, benchmark: pd.Series) -> float:
    """Pearson correlation of bar returns."""
    if returns.std() == 0 or benchmark.std() == 0:
        return math.nan
    return float(np.corrcoef(returns.to_numpy(), benchmark.to_numpy())[0, 1])


def information_ratio(returns: pd.Series, benchmark: pd.Series) -> float:
    """``mean(r − b) / std(r − b)`` per bar (ddof 1), not annualized — quantstats' definition."""
    active = returns - benchmark
    spread = active.std()
    return float(active.mean() / spread) if spread > 0 else math.nan


def relative_figures(equity: pd.Series, benchmark: pd.Series, periods_per_year: float,
                     risk_free_rate: float = 0.0) -> dict[str, float]:
    """The strategy against the benchmark (prices on the same bars, :func:`aligned`): the
    benchmark's own Sharpe ratio, volatility and max drawdown (as the run's metrics define
    them), then beta, alpha, correlation and information ratio of the bar returns, all over
    the bars where the benchmark has a price."""
    from meridian.engine.metrics import max_drawdown, sharpe_ratio, volatility

    known = benchmark.notna()
    strategy = returns_of(equity[known]).iloc[1:]  # the first bar has no return of its own
    bench = returns_of(benchmark[known]).iloc[1:]
    if len(bench) < 3:
        return {}
    values = bench.to_numpy()
    return {
        "benchmark_sharpe_ratio": float(sharpe_ratio(values, periods_per_year, risk_free_rate)),
        "benchmark_volatility": float(volatility(values, periods_per_year)),
        "benchmark_max_drawdown": float(max_drawdown(benchmark[known].to_numpy(float))),
        "beta": beta(strategy, bench),
        "alpha": alpha(strategy, bench, periods_per_year),
        "correlation": correlation(strategy, bench),
        "information_ratio": information_ratio(strategy, bench),
    }


def drawdown_periods(equity: pd.Series, top: int = WORST_DRAWDOWNS) -> pd.DataFrame:
    """The ``top`` deepest drawdowns, deepest first: ``start`` (the first bar below the
    previous peak), ``valley`` (the lowest bar), ``end`` (the first bar back at the peak; NaT
    while not recovered), ``depth`` (``valley / peak − 1``) and ``days`` (calendar days from
    the peak before ``start`` to ``end``, or to the last bar while not recovered)."""
    columns = ["start", "valley", "end", "depth", "days"]
    values = equity.dropna()
    if values.empty:
        return pd.DataFrame(columns=columns)
    peak = values.cummax()
    under = (values < peak).to_numpy()
    rows = []
    edges = np.flatnonzero(np.diff(np.concatenate(([False], under, [False])).astype(int)))
    for first, stop in zip(edges[::2], edges[1::2], strict=True):  # [first, stop) under water
        piece = values.iloc[first:stop] / peak.iloc[first:stop] - 1.0
        recovered = stop < len(values)
        began = values.index[first - 1] if first > 0 else values.index[first]
        finish = values.index[stop] if recovered else values.index[-1]
        rows.append({"start": values.index[first], "valley": piece.idxmin(),
                     "end": finish if recovered else pd.NaT, "depth": float(piece.min()),
                     "days": int((finish - began).days)})
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("depth", kind="stable").head(top).reset_index(drop=True)


def yearly_returns(equity: pd.Series, benchmark: pd.Series | None = None) -> pd.DataFrame:
    """Each calendar year's compounded return, ``E_last(year) / E_last(year before) − 1`` (the
    first year from the first bar), for the strategy and the benchmark when given."""
    def by_year(prices: pd.Series) -> pd.Series:
        values = prices.dropna()
        if values.empty:
            return pd.Series(dtype=float)
        ends = values.groupby(values.index.year).last()
        starts = ends.shift(1)
        starts.iloc[0] = values.iloc[0]
        return ends / starts - 1.0

    table = pd.DataFrame({"strategy": by_year(equity)})
    if benchmark is not None:
        table["benchmark"] = by_year(benchmark)
    table.index.name = "year"
    return table


def rolling_beta(equity: pd.Series, benchmark: pd.Series,
                 window: int = ROLLING_BETA_BARS) -> pd.Series:
    """β over the last ``window`` bars at each bar (``cov / var`` of bar returns), NaN until
    ``window`` bars are known."""
    strategy = equity.pct_change(fill_method=None)  # the first bar has no return
    bench = benchmark.pct_change(fill_method=None)
    covariance = strategy.rolling(window).cov(bench)
    variance = bench.rolling(window).var()
    return (covariance / variance.where(variance > 0)).rename(f"beta ({window} bars)")
