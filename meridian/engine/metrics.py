"""Performance metrics: the single place where Meridian defines them.

Definitions follow quantstats / backtesting.py so numbers can be compared with those tools.
Notation: ``E_t`` equity at bar t's close, ``E_0`` the initial capital, ``r_t = E_t/E_{t−1} − 1``
the bar returns (the first measured from ``E_0``), ``P`` periods per year (252 for daily bars),
``pnl_i`` / ``ret_i`` the profit and return of closed trade i, ``n`` the number of closed trades.

Undefined values are ``nan`` (never ``inf``, never an exception): a ratio whose denominator is
zero, any trade statistic when there are no trades, anything needing two returns with one.
Equity-based functions accept a 1-D array or a bars × columns array (one value per column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

NAN = float("nan")


@dataclass(frozen=True)
class Metric:
    """One row of the metrics table: everything Meridian knows about a metric besides its
    formula (which is the docstring of the function that computes it).

    ``kind`` says how to show a value (``percent`` values are fractions, 0.12 = 12 %);
    ``better`` is ``"higher"``, ``"lower"`` or None when no direction is better (exposure, the
    trade count, buy & hold); ``key`` metrics appear in run lists, tables and summaries under
    their ``short`` label."""

    name: str
    label: str
    kind: str
    better: str | None
    key: bool = False
    short: str = ""


METRICS = (
    Metric("total_return", "Total return", "percent", "higher", True, "return"),
    Metric("cagr", "CAGR", "percent", "higher", True, "cagr"),
    Metric("volatility", "Volatility", "percent", "lower"),
    Metric("sharpe_ratio", "Sharpe", "ratio", "higher", True, "sharpe"),
    Metric("sortino_ratio", "Sortino", "ratio", "higher"),
    Metric("calmar_ratio", "Calmar", "ratio", "higher"),
    Metric("max_drawdown", "Max drawdown", "percent", "higher", True, "maxdd"),
    Metric("max_drawdown_duration", "Max drawdown duration", "days", "lower"),
    Metric("exposure", "Exposure", "percent", None),
    Metric("num_trades", "Trades", "count", None, True, "trades"),
    Metric("win_rate", "Win rate", "percent", "higher"),
    Metric("profit_factor", "Profit factor", "ratio", "higher"),
    Metric("avg_trade", "Average trade", "percent", "higher"),
    Metric("best_trade", "Best trade", "percent", "higher"),
    Metric("worst_trade", "Worst trade", "percent", "higher"),
    Metric("expectancy", "Expectancy", "currency", "higher"),
    Metric("sqn", "SQN", "ratio", "higher"),
    Metric("buy_and_hold_return", "Buy & hold return", "percent", None),
    Metric("final_equity", "Final equity", "currency", "higher"),
)
"""The metrics table: storage, the dashboard, sweeps, reports and the terminal all read it.
Adding a metric is one row here plus its line in :func:`compute_metrics_batch`."""
METRIC_NAMES = tuple(metric.name for metric in METRICS)
KEY_METRICS = tuple(metric.name for metric in METRICS if metric.key)
_BY_NAME = {metric.name: metric for metric in METRICS}


def metric_info(name: str) -> Metric:
    """The table's row for ``name``; a metric it does not know (e.g. from an older or newer
    Meridian) reads as a ratio where higher is better, labelled from its name."""
    return _BY_NAME.get(name) or Metric(name, name.replace("_", " ").capitalize(), "ratio",
                                        "higher")


def _safe_divide(numerator, denominator):
    """``numerator / denominator`` with ``nan`` wherever the denominator is 0 or not finite."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return np.where(np.isfinite(out), out, np.nan)


_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 nanoseconds whatever the index's resolution (pandas 3 defaults to µs),
    without copying the index when it is already in nanoseconds."""
    values = index.values  # datetime64 (UTC for tz-aware indexes)
    raw = values.view("int64")
    return raw * _NS_PER_UNIT[np.datetime_data(values.dtype)[0]]


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the average bar spacing: 12 for monthly bars, 52 for weekly, otherwise
    bars per trading day × 252 (× 365 when a tenth or more of the bars fall on weekends, as crypto
    does). Average, not median, spacing: O(1), and daily bars average 1.45 days, weekly 7; the
    weekend share is read from at most 257 evenly spaced bars, so this stays cheap per backtest."""
    if len(index) < 3:
        return 252.0
    stamps = _nanoseconds(index)
    first, last = int(stamps[0]), int(stamps[-1])
    spacing_days = (last - first) / (len(index) - 1) / 86_400e9
    if spacing_days >= 25:
        return 12.0
    if spacing_days >= 5:
        return 52.0
    step = max(1, len(index) // 256)
    sampled_days = stamps[::step] // 86_400_000_000_000
    weekday = (sampled_days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    days_per_year = 365.0 if np.mean(weekday >= 5) > 0.1 else 252.0
    if spacing_days >= 0.99:
        return days_per_year
    days = stamps // 86_400_000_000_000
    return days_per_year * len(days) / (np.count_nonzero(np.diff(days)) + 1)


def returns_from_equity(equity: np.ndarray, initial_capital: float) -> np.ndarray:
    """``r_t = E_t / E_{t−1} − 1`` with ``E_{−1} = E_0``; 0 after ruin."""
    returns = np.empty_like(equity)  # same memory order: columns reduce like 1-D arrays
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(equity[1:], equity[:-1], out=returns[1:])
        returns[0] = equity[0] / initial_capital
        returns -= 1.0
    if not np.isfinite(returns).all():  # only after ruin (0 / 0)
        returns = np.where(np.isfinite(returns), returns, 0.0)
    return returns


def total_return(equity: np.ndarray, initial_capital: float):
    """``E_T / E_0 − 1``."""
    return equity[-1] / initial_capital - 1.0


def cagr(equity: np.ndarray, initial_capital: float, index: pd.DatetimeIndex):
    """``(E_T / E_0)^(1/years) − 1``, years = calendar days between first and last bar / 365.25.

    ``nan`` when the data spans no time; −1 after ruin."""
    years = (index[-1] - index[0]).total_seconds() / (365.25 * 86_400) if len(index) else 0.0
    if years <= 0:
        return np.full(equity.shape[1:], NAN) if equity.ndim == 2 else NAN
    growth = np.maximum(equity[-1] / initial_capital, 0.0)
    return growth ** (1.0 / years) - 1.0


def volatility(returns: np.ndarray, periods_per_year: float):
    """Annualized volatility ``std(r, ddof=1) × √P``; ``nan`` with fewer than 2 returns."""
    if len(returns) < 2:
        return np.full(returns.shape[1:], NAN) if returns.ndim == 2 else NAN
    return returns.std(axis=0, ddof=1) * math.sqrt(periods_per_year)


def _per_period(risk_free_rate: float, periods_per_year: float) -> float:
    """Annual risk-free rate compounded down to one period: ``(1 + rf)^(1/P) − 1``."""
    return (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0


def sharpe_ratio(returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0):
    """``mean(r − rf_p) / std(r, ddof=1) × √P``, rf_p the per-period risk-free rate.

    ``nan`` when returns do not vary (flat equity) or there are fewer than 2."""
    if len(returns) < 2:
        return np.full(returns.shape[1:], NAN) if returns.ndim == 2 else NAN
    excess = returns - _per_period(risk_free_rate, periods_per_year)
    std = returns.std(axis=0, ddof=1)
    std = np.where(std > 1e-15, std, 0.0)
    return _safe_divide(excess.mean(axis=0), std) * math.sqrt(periods_per_year)


def sortino_ratio(returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0):
    """``mean(r − rf_p) / DD × √P`` with downside deviation ``DD = √(Σ min(r − rf_p, 0)² / N)``.

    ``nan`` when no return falls below the risk-free rate (DD = 0)."""
    if len(returns) < 2:
        return np.full(returns.shape[1:], NAN) if returns.ndim == 2 else NAN
    excess = returns - _per_period(risk_free_rate, periods_per_year)
    downside = np.sqrt((np.minimum(excess, 0.0) ** 2).sum(axis=0) / len(excess))
    downside = np.where(downside > 1e-15, downside, 0.0)
    return _safe_divide(excess.mean(axis=0), downside) * math.sqrt(periods_per_year)


def drawdown(equity: np.ndarray, peak: np.ndarray | None = None) -> np.ndarray:
    """``E_t / max_{s≤t} E_s − 1`` per bar (≤ 0); 0 where equity has never been positive.
    ``peak``, the running maximum, may be passed when already computed."""
    peak = np.maximum.accumulate(equity, axis=0) if peak is None else peak
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)


def max_drawdown(equity: np.ndarray, peak: np.ndarray | None = None):
    """``min_t (E_t / max_{s≤t} E_s − 1)``: the deepest fall from a peak, as a negative fraction."""
    return drawdown(equity, peak).min(axis=0)


def max_drawdown_duration(
    equity: np.ndarray, index: pd.DatetimeIndex, peak: np.ndarray | None = None
):
    """Longest time under water, in calendar days: from a peak to the bar where equity first
    gets back to it (or to the last bar if it never does). 0 if equity never falls."""
    values = equity.reshape(len(equity), -1)
    peak = np.maximum.accumulate(values, axis=0) if peak is None else peak.reshape(values.shape)
    at_peak = values >= peak
    bars = np.arange(len(values), dtype=np.int32)[:, None]
    last_peak = np.maximum.accumulate(np.where(at_peak, bars, 0), axis=0)
    times = _nanoseconds(index)
    # A spell is longest at its end: the bar that recovers the peak, or the last bar while
    # still under water.
    rows, cols = np.nonzero(at_peak[1:] & ~at_peak[:-1])
    spells = times[rows + 1] - times[last_peak[rows, cols]]
    longest = np.zeros(values.shape[1], dtype=np.int64)
    if values.shape[1] == 1:
        longest[0] = spells.max(initial=0)
    else:
        np.maximum.at(longest, cols, spells)
    still_under = ~at_peak[-1]
    longest = np.where(still_under, np.maximum(longest, times[-1] - times[last_peak[-1]]), longest)
    days = longest / 86_400e9
    return float(days[0]) if equity.ndim == 1 else days


def calmar_ratio(cagr_value, max_drawdown_value):
    """``CAGR / |max drawdown|``; ``nan`` when there was no drawdown (one under 1e-12, the
    rounding of a flat equity curve, counts as none: dividing by it gives noise)."""
    depth = np.abs(max_drawdown_value)
    return _safe_divide(cagr_value, np.where(depth > 1e-12, depth, 0.0))


def exposure(held: np.ndarray):
    """Share of bars with a position open (``held ≠ 0`` after the bar's fill), 0..1."""
    return (held != 0).mean(axis=0)


# Trade statistics. Each takes the per-trade values and, for many combinations at once, the
# column of each trade (``column``) and the number of columns; alone they describe one list
# of trades and return a float. Sums run in trade order, identically for one or many columns.


def _grouped(column: np.ndarray | None, size: int, columns: int) -> tuple[np.ndarray, int]:
    return (np.zeros(size, dtype=np.int64), 1) if column is None else (column, columns)


def _count(column: np.ndarray, columns: int) -> np.ndarray:
    return np.bincount(column, minlength=columns).astype(float)


def _sum(values: np.ndarray, column: np.ndarray, columns: int) -> np.ndarray:
    return np.bincount(column, weights=values, minlength=columns)


def _result(values: np.ndarray, grouped: bool):
    return values if grouped else float(values[0])


def win_rate(pnl: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """``#(pnl_i > 0) / n``; ``nan`` with no trades."""
    group, size = _grouped(column, len(pnl), columns)
    wins = _sum((pnl > 0).astype(float), group, size)
    return _result(_safe_divide(wins, _count(group, size)), column is not None)


def profit_factor(pnl: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """``Σ pnl_i⁺ / |Σ pnl_i⁻|`` (gross profit over gross loss); ``nan`` with no losing trade."""
    group, size = _grouped(column, len(pnl), columns)
    gains = _sum(np.maximum(pnl, 0.0), group, size)
    losses = -_sum(np.minimum(pnl, 0.0), group, size)
    return _result(_safe_divide(gains, losses), column is not None)


def avg_trade(trade_returns: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """Arithmetic mean of trade returns ``Σ ret_i / n``, ret_i = pnl_i / entry notional."""
    group, size = _grouped(column, len(trade_returns), columns)
    mean = _safe_divide(_sum(trade_returns, group, size), _count(group, size))
    return _result(mean, column is not None)


def _extreme(values, column, columns, reduce, start: float):
    group, size = _grouped(column, len(values), columns)
    out = np.full(size, start)
    reduce.at(out, group, values)
    return _result(np.where(_count(group, size) > 0, out, np.nan), column is not None)


def best_trade(trade_returns: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """``max(ret_i)``; ``nan`` with no trades."""
    return _extreme(trade_returns, column, columns, np.maximum, -np.inf)


def worst_trade(trade_returns: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """``min(ret_i)``; ``nan`` with no trades."""
    return _extreme(trade_returns, column, columns, np.minimum, np.inf)


def expectancy(pnl: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """Expected profit per trade in currency: ``W × avg win − (1 − W) × avg loss``, which is
    ``Σ pnl_i / n``."""
    group, size = _grouped(column, len(pnl), columns)
    return _result(_safe_divide(_sum(pnl, group, size), _count(group, size)), column is not None)


def sqn(pnl: np.ndarray, column: np.ndarray | None = None, columns: int = 1):
    """Van Tharp's System Quality Number ``√n × mean(pnl_i) / std(pnl_i, ddof=1)``;
    ``nan`` with fewer than 2 trades or identical pnls."""
    group, size = _grouped(column, len(pnl), columns)
    count = _count(group, size)
    mean = _safe_divide(_sum(pnl, group, size), count)
    deviation = pnl - mean[group]
    variance = _safe_divide(_sum(deviation * deviation, group, size), count - 1.0)
    std = np.sqrt(np.where(count > 1, variance, np.nan))
    std = np.where(std > 1e-12 * np.abs(mean), std, np.nan)
    return _result(_safe_divide(np.sqrt(count) * mean, std), column is not None)


def buy_and_hold_return(close: np.ndarray) -> float:
    """``Close_T / Close_0 − 1``: what holding the instrument did, costs ignored."""
    return float(close[-1] / close[0] - 1.0)


def compute_metrics_batch(
    result, *, risk_free_rate: float | None = None, periods_per_year: float | None = None
) -> dict[str, np.ndarray]:
    """Every metric above for each column of an
    :class:`~meridian.engine.backtest.EngineResult`: name → array with one value per column.

    This is the only place metrics are assembled: a single backtest is a batch of one, so a
    sweep's row and ``run_backtest`` with the same parameters give the same floats."""
    sim, capital, index = result.sim, result.initial_capital, result.index
    columns = sim.equity.shape[1]
    settings = result.settings  # the run's: risk-free rate and periods unless given here
    periods = periods_per_year or settings.periods(index)
    if risk_free_rate is None:
        risk_free_rate = settings.risk_free_rate
    returns = returns_from_equity(sim.equity, capital)
    trades = result.trade_arrays
    pnl, trade_returns, column = trades.pnl, trades.returns, trades.column
    growth = cagr(sim.equity, capital, index)
    peak = np.maximum.accumulate(sim.equity, axis=0)
    deepest = max_drawdown(sim.equity, peak)
    values = {
        "total_return": total_return(sim.equity, capital),
        "cagr": growth,
        "volatility": volatility(returns, periods),
        "sharpe_ratio": sharpe_ratio(returns, periods, risk_free_rate),
        "sortino_ratio": sortino_ratio(returns, periods, risk_free_rate),
        "calmar_ratio": calmar_ratio(growth, deepest),
        "max_drawdown": deepest,
        "max_drawdown_duration": max_drawdown_duration(sim.equity, index, peak),
        "exposure": exposure(sim.held),
        "num_trades": _count(column, columns),
        "win_rate": win_rate(pnl, column, columns),
        "profit_factor": profit_factor(pnl, column, columns),
        "avg_trade": avg_trade(trade_returns, column, columns),
        "best_trade": best_trade(trade_returns, column, columns),
        "worst_trade": worst_trade(trade_returns, column, columns),
        "expectancy": expectancy(pnl, column, columns),
        "sqn": sqn(pnl, column, columns),
        "buy_and_hold_return": buy_and_hold_return(result.close),
        "final_equity": sim.equity[-1],
    }
    out = {}
    for name in METRIC_NAMES:
        value = np.asarray(values[name], dtype=float)
        out[name] = value.reshape(columns) if value.size == columns else np.full(columns, value)
    return out


def compute_metrics(
    result, *, risk_free_rate: float | None = None, periods_per_year: float | None = None
) -> dict[str, float]:
    """Every metric above for a single backtest (the first column of ``result``), as floats."""
    batch = compute_metrics_batch(result, risk_free_rate=risk_free_rate,
                                  periods_per_year=periods_per_year)
    return {name: float(values[0]) for name, values in batch.items()}


def format_metric(name: str, value: float | None) -> str:
    """A metric as people read it: ``12.34%``, ``1.23``, ``$101,234.56``, ``45 days``; ``n/a``
    for an undefined value. Unknown names are shown as ratios."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    kind = metric_info(name).kind
    if kind == "percent":
        return f"{value * 100:.2f}%"
    if kind == "currency":
        return f"{'-' if value < 0 else ''}${abs(value):,.2f}"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "days":
        return f"{value:,.0f} days"
    return f"{value:.2f}"


def ordered_metric_names(metrics: dict) -> list[str]:
    """The standard metrics in their usual order, then any others in the order given."""
    return [n for n in METRIC_NAMES if n in metrics] + [n for n in metrics if n not in METRIC_NAMES]


def format_metrics(metrics: dict[str, float | None], indent: str = "  ") -> str:
    """Aligned ``name  value`` lines, the standard metrics first, for terminals."""
    names = ordered_metric_names(metrics)
    width = max((len(n) for n in names), default=0)
    return "\n".join(f"{indent}{n:<{width}}  {format_metric(n, metrics[n])}" for n in names)
