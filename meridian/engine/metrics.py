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

import numpy as np
import pandas as pd

NAN = float("nan")

METRIC_NAMES = (
    "total_return", "cagr", "volatility", "sharpe_ratio", "sortino_ratio", "calmar_ratio",
    "max_drawdown", "max_drawdown_duration", "exposure", "num_trades", "win_rate",
    "profit_factor", "avg_trade", "best_trade", "worst_trade", "expectancy", "sqn",
    "buy_and_hold_return", "final_equity",
)


def _safe_divide(numerator, denominator):
    """``numerator / denominator`` with ``nan`` wherever the denominator is 0 or not finite."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return np.where(np.isfinite(out), out, np.nan)


def _nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 nanoseconds whatever the index's resolution (pandas 3 defaults to µs)."""
    return index.values.astype("datetime64[ns]").view("int64")


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the average bar spacing: 12 for monthly bars, 52 for weekly, otherwise
    bars per trading day × 252 (× 365 when a tenth or more of the bars fall on weekends, as crypto
    does). Average, not median, spacing: O(1), and daily bars average 1.45 days, weekly 7."""
    if len(index) < 3:
        return 252.0
    nanoseconds = _nanoseconds(index)
    spacing_days = float(nanoseconds[-1] - nanoseconds[0]) / (len(index) - 1) / 86_400e9
    if spacing_days >= 25:
        return 12.0
    if spacing_days >= 5:
        return 52.0
    days = nanoseconds // 86_400_000_000_000
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    days_per_year = 365.0 if np.mean(weekday >= 5) > 0.1 else 252.0
    if spacing_days >= 0.99:
        return days_per_year
    bars_per_day = len(days) / (np.count_nonzero(np.diff(days)) + 1)
    return days_per_year * bars_per_day


def returns_from_equity(equity: np.ndarray, initial_capital: float) -> np.ndarray:
    """``r_t = E_t / E_{t−1} − 1`` with ``E_{−1} = E_0``; 0 after ruin."""
    previous = np.concatenate([np.full((1,) + equity.shape[1:], initial_capital), equity[:-1]])
    return np.nan_to_num(_safe_divide(equity - previous, previous))


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


def drawdown(equity: np.ndarray) -> np.ndarray:
    """``E_t / max_{s≤t} E_s − 1`` per bar (≤ 0); 0 where equity has never been positive."""
    peak = np.maximum.accumulate(equity, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)


def max_drawdown(equity: np.ndarray):
    """``min_t (E_t / max_{s≤t} E_s − 1)``: the deepest fall from a peak, as a negative fraction."""
    return drawdown(equity).min(axis=0)


def max_drawdown_duration(equity: np.ndarray, index: pd.DatetimeIndex) -> float:
    """Longest time under water, in calendar days: from a peak to the bar where equity first
    gets back to it (or to the last bar if it never does). 0 if equity never falls."""
    at_peak = equity >= np.maximum.accumulate(equity)
    if at_peak.all():
        return 0.0
    # A spell under water runs from a peak to the next peak (the recovery) when bars lie
    # between them, or from the last peak to the last bar when equity never gets back.
    peaks = np.flatnonzero(at_peak)
    ends = np.append(peaks[1:], len(equity) - 1)
    spell = (ends - peaks > 1) | ((ends - peaks == 1) & (ends == len(equity) - 1) & ~at_peak[-1])
    times = _nanoseconds(index)
    return float((times[ends[spell]] - times[peaks[spell]]).max() / 86_400e9)


def calmar_ratio(cagr_value, max_drawdown_value):
    """``CAGR / |max drawdown|``; ``nan`` when there was no drawdown."""
    return _safe_divide(cagr_value, np.abs(max_drawdown_value))


def exposure(held: np.ndarray):
    """Share of bars with a position open (``held ≠ 0`` after the bar's fill), 0..1."""
    return (held != 0).mean(axis=0)


def win_rate(pnl: np.ndarray) -> float:
    """``#(pnl_i > 0) / n``; ``nan`` with no trades."""
    return float(np.mean(pnl > 0)) if len(pnl) else NAN


def profit_factor(pnl: np.ndarray) -> float:
    """``Σ pnl_i⁺ / |Σ pnl_i⁻|`` (gross profit over gross loss); ``nan`` with no losing trade."""
    return float(_safe_divide(pnl[pnl > 0].sum(), -pnl[pnl < 0].sum())) if len(pnl) else NAN


def avg_trade(trade_returns: np.ndarray) -> float:
    """Arithmetic mean of trade returns ``mean(ret_i)``, ret_i = pnl_i / entry notional."""
    return float(trade_returns.mean()) if len(trade_returns) else NAN


def best_trade(trade_returns: np.ndarray) -> float:
    """``max(ret_i)``; ``nan`` with no trades."""
    return float(trade_returns.max()) if len(trade_returns) else NAN


def worst_trade(trade_returns: np.ndarray) -> float:
    """``min(ret_i)``; ``nan`` with no trades."""
    return float(trade_returns.min()) if len(trade_returns) else NAN


def expectancy(pnl: np.ndarray) -> float:
    """Expected profit per trade in currency: ``W × avg win − (1 − W) × avg loss = mean(pnl_i)``."""
    return float(pnl.mean()) if len(pnl) else NAN


def sqn(pnl: np.ndarray) -> float:
    """Van Tharp's System Quality Number ``√n × mean(pnl_i) / std(pnl_i, ddof=1)``;
    ``nan`` with fewer than 2 trades or identical pnls."""
    if len(pnl) < 2:
        return NAN
    std = pnl.std(ddof=1)
    return float(math.sqrt(len(pnl)) * pnl.mean() / std) if std > 0 else NAN


def buy_and_hold_return(close: np.ndarray) -> float:
    """``Close_T / Close_0 − 1``: what holding the instrument did, costs ignored."""
    return float(close[-1] / close[0] - 1.0)


def compute_metrics(
    result, *, risk_free_rate: float = 0.0, periods_per_year: float | None = None
) -> dict[str, float]:
    """Every metric above for one :class:`~meridian.engine.backtest.EngineResult`, as floats."""
    equity, capital, index = result.sim.equity, result.initial_capital, result.index
    periods = periods_per_year or infer_periods_per_year(index)
    returns = returns_from_equity(equity, capital)
    pnl, trade_returns = result.trade_arrays.pnl, result.trade_arrays.returns
    growth = cagr(equity, capital, index)
    deepest = max_drawdown(equity)
    values = {
        "total_return": total_return(equity, capital),
        "cagr": growth,
        "volatility": volatility(returns, periods),
        "sharpe_ratio": sharpe_ratio(returns, periods, risk_free_rate),
        "sortino_ratio": sortino_ratio(returns, periods, risk_free_rate),
        "calmar_ratio": calmar_ratio(growth, deepest),
        "max_drawdown": deepest,
        "max_drawdown_duration": max_drawdown_duration(equity, index),
        "exposure": exposure(result.sim.held),
        "num_trades": len(pnl),
        "win_rate": win_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "avg_trade": avg_trade(trade_returns),
        "best_trade": best_trade(trade_returns),
        "worst_trade": worst_trade(trade_returns),
        "expectancy": expectancy(pnl),
        "sqn": sqn(pnl),
        "buy_and_hold_return": buy_and_hold_return(result.close),
        "final_equity": equity[-1],
    }
    return {name: float(values[name]) for name in METRIC_NAMES}


METRIC_KINDS = {
    "total_return": "percent", "cagr": "percent", "volatility": "percent",
    "sharpe_ratio": "ratio", "sortino_ratio": "ratio", "calmar_ratio": "ratio",
    "max_drawdown": "percent", "max_drawdown_duration": "days", "exposure": "percent",
    "num_trades": "count", "win_rate": "percent", "profit_factor": "ratio",
    "avg_trade": "percent", "best_trade": "percent", "worst_trade": "percent",
    "expectancy": "currency", "sqn": "ratio", "buy_and_hold_return": "percent",
    "final_equity": "currency",
}


def format_metric(name: str, value: float | None) -> str:
    """A metric as people read it: ``12.34%``, ``1.23``, ``$101,234.56``, ``45 days``; ``n/a``
    for an undefined value. Unknown names are shown as ratios."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    kind = METRIC_KINDS.get(name, "ratio")
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
