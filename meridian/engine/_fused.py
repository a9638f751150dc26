"""One compiled pass per column: fills, costs, equity, closed trades and every metric.

A sweep does not need a combination's equity curve or trade list, only its row of metrics.
:func:`backtest_batch` followed by :func:`~meridian.engine.metrics.compute_metrics_batch`
builds bars × combinations arrays for each step (held, events, factors, equity, returns,
peaks…); this kernel walks each column once, keeps one bar's state, records each trade's P&L
as it closes and accumulates the metrics on the fly, so its memory is one column's and its
speed is the machine's.

Two kernels, and :func:`sweep_metrics` chooses. :func:`metrics` covers what the vectorized
engine covers — fractional exposures, commission, slippage, next-open or close fills — with
the same arithmetic as the reference, step for step (:mod:`meridian.engine._simulate` for
fills and equity, :func:`~meridian.engine._trades.closed_trades` for trades). The other covers
stops, targets and trailing stops (one fraction per column, so a grid over them is one pass),
whole contracts, volatility sizing, rebalancing and financing: it runs the per-bar
simulator's own column loop (:func:`meridian.engine._orders.column`, the code
``backtest_batch`` runs) into one column's buffers. Both measure with :func:`_measure`, the
formulas of :mod:`meridian.engine.metrics` (whose docstrings define them), summing as numpy
does (:func:`_pairwise`) and leaving the powers to numpy, so every metric is the same float
``run_backtest`` gives.
Arrays are indexed with ``uint64`` in the hot loops: numba then leaves out its handling of
negative indices, and LLVM vectorizes the passes over a column (a third faster, same floats).
Price levels that change bar by bar (a strategy's ``exits``, such as the FLD line as a stop)
stay with ``backtest_batch`` (see :func:`fusable`). ``run_backtest`` stays the reference, and
the tests hold both kernels to it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numba import uint64

from meridian.engine import _orders
from meridian.engine._jit import njit
from meridian.engine.metrics import (
    METRIC_NAMES,
    _nanoseconds,
    _per_period,
    cagr,
    calmar_ratio,
)
from meridian.engine.sizing import rebalance_moments
from meridian.settings import EXITS, LEVELS, RunSettings

ORDER = ("total_return", "cagr", "volatility", "sharpe_ratio", "sortino_ratio", "calmar_ratio",
         "max_drawdown", "max_drawdown_duration", "exposure", "num_trades", "win_rate",
         "profit_factor", "avg_trade", "best_trade", "worst_trade", "expectancy", "sqn",
         "buy_and_hold_return", "final_equity")
"""The kernel's output columns; the metrics table's order (checked at import)."""
assert ORDER == METRIC_NAMES, "the fused kernel must write the metrics table's columns"

DAY_NS = 86_400e9


def fusable(settings: RunSettings) -> bool:
    """Whether the fused pass runs ``settings``: all but price levels given as a Series
    (those are a strategy's own, per combination: its ``exits``)."""
    return not any(isinstance(getattr(settings, name, None), pd.Series) for name in LEVELS)


def vectorized(settings: RunSettings, index: pd.DatetimeIndex) -> bool:
    """Whether :func:`metrics` runs ``settings``: what the vectorized engine runs (no
    contract, no volatility sizing, no stops or targets, no periodic rebalancing); the rest
    is the per-bar simulator's (see :func:`sweep_metrics`)."""
    if settings.instrument is not None or settings.sizing != "fixed_fraction":
        return False
    for name in (*EXITS, *LEVELS):
        value = getattr(settings, name, None)
        if isinstance(value, pd.Series) or (value is not None and value != 0):
            return False
    return not rebalance_moments(index, settings.rebalance).any()


@njit(cache=True, nogil=True, error_model="numpy")
def _finite_or_nan(value: float) -> float:
    return value if np.isfinite(value) else np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_factor(before: float, after: float, buy_cost: float, sell_cost: float) -> float:
    if after > before:
        return (1.0 + buy_cost * before) / (1.0 + buy_cost * after)
    return (1.0 - sell_cost * before) / (1.0 - sell_cost * after)


@njit(cache=True, nogil=True, error_model="numpy")
def _sign(value: float) -> float:
    return 1.0 if value > 0 else (-1.0 if value < 0 else 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _pairwise(values, start, count):
    """The sum of ``values[start:start + count]`` as numpy adds a contiguous run of float64
    (``pairwise_sum_DOUBLE``: eight running sums up to 128 values, each half on its own
    above), so it is the same float as ``np.sum`` and the metrics the reference computes
    with it. The halving walks an explicit stack: numba cannot cache a recursive function."""
    if count <= 128:
        return _pairwise_block(values, start, count)
    starts = np.empty(64, np.int64)  # 2⁶⁴ values would need fewer levels
    counts = np.empty(64, np.int64)
    lefts = np.empty(64)
    stages = np.empty(64, np.int64)  # 0: left half next, 1: right half next, 2: add them
    top = 0
    starts[0], counts[0], stages[0] = start, count, 0
    result = 0.0
    while True:
        size = counts[top]
        if size <= 128:
            result = _pairwise_block(values, starts[top], size)
        else:
            half = size // 2
            half -= half % 8
            if stages[top] < 2:
                if stages[top] == 1:
                    lefts[top] = result
                offset = 0 if stages[top] == 0 else half
                stages[top] += 1
                top += 1
                starts[top] = starts[top - 1] + offset
                counts[top] = half if offset == 0 else size - half
                stages[top] = 0
                continue
            result = lefts[top] + result
        top -= 1
        if top < 0:
            return result


@njit(cache=True, nogil=True, error_model="numpy")
def _pairwise_block(values, start, count):
    """numpy's pairwise sum of at most 128 values: eight running sums, then the rest. Indexed
    with unsigned integers: numba then drops its negative-index handling and LLVM adds the
    eight sums as vectors (1.7× faster; the same additions in the same order)."""
    if count < 8:
        total = 0.0
        for i in range(count):
            total += values[start + i]
        return total
    first = uint64(start)
    r0, r1 = values[first], values[first + uint64(1)]
    r2, r3 = values[first + uint64(2)], values[first + uint64(3)]
    r4, r5 = values[first + uint64(4)], values[first + uint64(5)]
    r6, r7 = values[first + uint64(6)], values[first + uint64(7)]
    at = first + uint64(8)
    whole = first + uint64(count - count % 8)
    while at < whole:
        r0 += values[at]
        r1 += values[at + uint64(1)]
        r2 += values[at + uint64(2)]
        r3 += values[at + uint64(3)]
        r4 += values[at + uint64(4)]
        r5 += values[at + uint64(5)]
        r6 += values[at + uint64(6)]
        r7 += values[at + uint64(7)]
        at += uint64(8)
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(count - count % 8, count):
        total += values[start + i]
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def _held(target, first, column, t, bars, next_open):
    """The exposure held over bar ``t``: the target decided at the previous close (next-open
    fills; none over the first bar), else at this close, the last bar keeping the one before
    (a close fill on the last bar could not be marked)."""
    if next_open:
        return 0.0 if t == 0 else target[uint64(first + t - 1), column]
    if t == bars - 1 and bars > 1:
        return target[uint64(first + bars - 2), column]
    return target[uint64(first + t), column]


@njit(cache=True, nogil=True, error_model="numpy")
def _column(open_, close, target, first, column, next_open, capital, buy_cost, sell_cost,
            commission, slippage, times, periods, rf_period, equity, pnls, rets, work,
            out):
    """One combination: simulate ``target[first:first + bars, column]`` and write its metrics
    to ``out``;
    ``equity`` and ``work`` (bars), ``pnls`` and ``rets`` (bars + 1) are scratch buffers;
    ``equity`` holds the bar returns afterwards.

    Bars go a run at a time: a run of bars holding one exposure has one fill price, so its
    equity is a loop LLVM vectorizes (its division, one a bar, was most of the simulation's
    time one bar at a time); the same operations in the same order, so the same floats."""
    bars = close.shape[0]
    mark = open_ if next_open else close
    product = 1.0  # cumulative product of the fill factors
    last_fill = 0
    held_before = 0.0
    units_before = 0.0
    ruined = False
    exposed = 0
    # the trade being built: its P&L and entry notional (closed_trades' sums, in its order);
    # each closed trade's P&L and return go to pnls / rets
    trades = 0
    open_trade = False
    pnl = added_notional = 0.0
    held = 0.0
    ucolumn = uint64(column)
    t = 0
    while t <= bars:
        stop = bars + 1
        if t < bars:
            held = _held(target, first, ucolumn, t, bars, next_open)
            event = held != held_before
            if event:
                was = held_before
                move = mark[uint64(t)] / mark[uint64(last_fill)]
                growth = max(1.0 + was * (move - 1.0), 0.0)
                drifted = was * move / growth
                if not np.isfinite(drifted):
                    drifted = 0.0
                product *= growth * _fill_factor(drifted, held, buy_cost, sell_cost)
                last_fill = t
            after_fill = product * capital
            base = mark[uint64(last_fill)]
            if t == bars - 1:  # still open after the last bar: closed at its close
                stop = bars
                value = close[uint64(t)] / base
                value -= 1.0
                value *= held
                value += 1.0
                value = max(value, 0.0)
                value *= after_fill
                last_growth = value / after_fill
                last_drift = held * (close[uint64(t)] / base) / last_growth
                if not np.isfinite(last_drift):
                    last_drift = 0.0
                value *= _fill_factor(last_drift, 0.0, buy_cost, sell_cost)
                if ruined or value <= 0.0:
                    ruined = True
                    value = 0.0
                equity[uint64(t)] = value
            else:
                # the run: up to the next change of exposure, the last bar on its own
                stop = t + 1
                while stop < bars - 1 and _held(target, first, ucolumn, stop, bars,
                                                next_open) == held:
                    stop += 1
                if ruined:
                    for s in range(uint64(t), uint64(stop)):
                        equity[s] = 0.0
                else:
                    empty = 0
                    for s in range(uint64(t), uint64(stop)):
                        value = close[s] / base
                        value -= 1.0
                        value *= held
                        value += 1.0
                        value = max(value, 0.0)
                        value *= after_fill
                        equity[s] = value
                        empty += value <= 0.0
                    if empty:  # ruined in this run: nothing from its first empty bar on
                        for s in range(t, stop):
                            ruined = ruined or equity[s] <= 0.0
                            if ruined:
                                equity[s] = 0.0
            if held != 0.0:
                exposed += stop - t
            held_before = held
            if not event:
                t = stop
                continue
            units_after = held * after_fill / mark[t]
            price_mark = mark[t]
        else:
            if held == 0.0:
                break
            units_after = 0.0
            price_mark = close[bars - 1]
        # the fill's legs: closing, resizing, opening (closed_trades)
        before, after = units_before, units_after
        sign_before, sign_after = _sign(before), _sign(after)
        flips = sign_before != sign_after
        for kind in range(3):
            if kind == 0:
                if not (sign_before != 0 and flips):
                    continue
                units, position = -before, before
            elif kind == 1:
                if not (sign_before != 0 and not flips and before != after):
                    continue
                units, position = after - before, before
            else:
                if not (sign_after != 0 and flips):
                    continue
                units, position = after, after
                if open_trade:  # the previous trade is complete
                    pnls[trades], rets[trades] = pnl, pnl / added_notional
                    trades += 1
                open_trade = True
                pnl = added_notional = 0.0
            price = price_mark * (1.0 + slippage * _sign(units))
            fee = commission * abs(units) * price
            pnl += -units * price - fee
            if _sign(units) == _sign(position):
                added_notional += abs(units) * price
        units_before = units_after
        t = stop
    if open_trade:
        pnls[trades], rets[trades] = pnl, pnl / added_notional
        trades += 1
    _measure(close, equity, exposed, pnls, rets, trades, times, capital, periods,
             rf_period, work, out)


@njit(cache=True, nogil=True, error_model="numpy")
def _measure(close, equity, exposed, pnls, rets, trades, times, capital, periods,
             rf_period, work, out):
    """Every metric into ``out`` from one combination's equity at each close (turned into its
    bar returns, in place), the number of bars it held a position, and the P&L and return of
    each of its ``trades`` closed trades (in the order they closed); ``work`` is a scratch
    buffer of one value a bar."""
    bars = close.shape[0]
    # drawdown and its duration (metrics.max_drawdown, max_drawdown_duration), a spell under
    # water at a time: its deepest point is its lowest equity over its peak (dividing by one
    # peak keeps the order, rounding included), so one division a spell, not one a bar
    peak = -np.inf
    trough = np.inf
    deepest = 0.0  # the first bar is its own peak
    last_peak = 0
    longest = 0
    under = False
    for t in range(bars):
        value = equity[uint64(t)]
        if value >= peak:
            if under:
                longest = max(longest, times[t] - times[last_peak])
                if peak > 0:
                    deepest = min(deepest, trough / peak - 1.0)
            last_peak = t
            peak = trough = value
            under = False
        else:
            trough = min(trough, value)
            under = True
    if under:  # still under water at the end
        longest = max(longest, times[bars - 1] - times[last_peak])
        if peak > 0:
            deepest = min(deepest, trough / peak - 1.0)

    final = equity[bars - 1]
    # returns, in place (last bar first): r_t = E_t / E_{t-1} - 1, the first against the
    # capital; 0 where undefined (after ruin)
    for t in range(bars - 1, -1, -1):
        r = equity[uint64(t)] / (capital if t == 0 else equity[uint64(t - 1)]) - 1.0
        equity[uint64(t)] = r if np.isfinite(r) else 0.0
    # sums as numpy's mean and std take them (pairwise), so each metric is the same float
    mean = _pairwise(equity, 0, bars) / bars
    for t in range(bars):
        gap = equity[uint64(t)] - mean
        work[uint64(t)] = gap * gap
    squares = _pairwise(work, 0, bars)
    if rf_period == 0.0:
        excess_mean = mean  # r − 0 is r, bit for bit: the same sum
    else:
        for t in range(bars):
            work[t] = equity[t] - rf_period
        excess_mean = _pairwise(work, 0, bars) / bars
    for t in range(bars):
        low = min(equity[uint64(t)] - rf_period, 0.0)
        work[uint64(t)] = low * low
    below = _pairwise(work, 0, bars)
    root = math.sqrt(periods)
    nan = np.nan
    out[0] = final / capital - 1.0
    # out[1] (CAGR) and out[5] (Calmar) are numpy's: see _power_metrics
    std = math.sqrt(squares / (bars - 1)) if bars > 1 else nan
    out[2] = std * root
    if bars > 1:
        spread = std if std > 1e-15 else 0.0
        out[3] = _finite_or_nan(excess_mean / spread) * root
        downside = math.sqrt(below / bars)
        downside = downside if downside > 1e-15 else 0.0
        out[4] = _finite_or_nan(excess_mean / downside) * root
    else:
        out[3] = nan
        out[4] = nan
    out[6] = deepest
    out[7] = longest / 86_400e9
    out[8] = exposed / bars
    # trade statistics (metrics.win_rate … sqn), summed in trade order
    wins = 0
    gains = losses = pnl_sum = ret_sum = 0.0
    best, worst = -np.inf, np.inf
    for i in range(trades):
        ret = rets[i]
        wins += pnls[i] > 0
        gains += max(pnls[i], 0.0)
        losses += min(pnls[i], 0.0)
        pnl_sum += pnls[i]
        ret_sum += ret
        best = np.nan if np.isnan(best) or np.isnan(ret) else max(best, ret)
        worst = np.nan if np.isnan(worst) or np.isnan(ret) else min(worst, ret)
    count = float(trades)
    out[9] = count
    out[10] = _finite_or_nan(wins / count)
    out[11] = _finite_or_nan(gains / -losses)
    out[12] = _finite_or_nan(ret_sum / count)
    out[13] = best if trades else nan
    out[14] = worst if trades else nan
    trade_mean = _finite_or_nan(pnl_sum / count)
    out[15] = trade_mean
    deviation = 0.0
    for i in range(trades):
        gap = pnls[i] - trade_mean
        deviation += gap * gap
    variance = _finite_or_nan(deviation / (count - 1.0))
    spread = math.sqrt(variance) if trades > 1 else nan
    if not (spread > 1e-12 * abs(trade_mean)):
        spread = nan
    out[16] = _finite_or_nan(math.sqrt(count) * trade_mean / spread)
    out[17] = close[bars - 1] / close[0] - 1.0
    out[18] = final


@njit(cache=True, nogil=True, error_model="numpy")
def _keep(kept, slot, returns):
    """``kept[:, slot] = returns`` as a loop: numba compiles the slice assignment's general
    case (broadcasting, shape errors) for seconds."""
    for t in range(returns.shape[0]):
        kept[t, slot] = returns[t]


@njit(cache=True, nogil=True, error_model="numpy")
def _columns(open_, close, targets, first, next_open, capital, buy_cost, sell_cost,
             commission, slippage, times, periods, rf_period, keep, kept, out):
    bars, count = close.shape[0], targets.shape[1]
    returns = np.empty(bars)
    work = np.empty(bars)
    pnls = np.empty(bars + 1)
    rets = np.empty(bars + 1)
    slot = 0
    for column in range(count):
        _column(open_, close, targets, first, column, next_open, capital, buy_cost, sell_cost,
                commission, slippage, times, periods, rf_period, returns, pnls, rets,
                work, out[column])
        if keep[column]:
            _keep(kept, slot, returns)
            slot += 1


def metrics(open_: np.ndarray, close: np.ndarray, index: pd.DatetimeIndex,
            targets: np.ndarray, settings: RunSettings, keep: np.ndarray | None = None,
            first: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Every metric (combinations × :data:`~meridian.engine.metrics.METRIC_NAMES`) of each
    column of ``targets`` (bars × combinations, checked exposures; rows ``first`` on are these
    bars', so a window needs no copy) traded over these bars with ``settings``
    (:func:`fusable` ones; the window already applied), and the bar returns (float32, bars ×
    marked) of the columns ``keep`` marks, else None."""
    bars, count = len(close), targets.shape[1]
    if first < 0 or first + bars > targets.shape[0]:
        raise ValueError(f"targets rows {first}..{first + bars} lie outside its "
                         f"{targets.shape[0]} rows")
    keep = np.zeros(count, dtype=np.bool_) if keep is None else np.asarray(keep, np.bool_)
    kept = np.zeros((bars, int(keep.sum())), dtype=np.float32)
    out = np.full((count, len(ORDER)), np.nan)
    commission, slippage = float(settings.commission), float(settings.slippage)
    times, periods, rf_period = _calendar(index, settings, float(settings.periods(index)))
    _columns(np.ascontiguousarray(open_, dtype=float), np.ascontiguousarray(close, dtype=float),
             np.asfortranarray(targets, dtype=float), int(first),
             settings.fill == "next_open", float(settings.initial_capital),
             slippage + commission * (1.0 + slippage), slippage + commission * (1.0 - slippage),
             commission, slippage, times, periods, rf_period, keep, kept, out)
    _power_metrics(out, float(settings.initial_capital), index)
    return out, (kept if keep.any() else None)


def _power_metrics(out: np.ndarray, capital: float, index: pd.DatetimeIndex) -> None:
    """CAGR and the Calmar ratio of each row, by :mod:`~meridian.engine.metrics`' own
    functions: numba's power differs from numpy's in the last bit."""
    growth = cagr(out[:, ORDER.index("final_equity")][None, :], capital, index)
    out[:, ORDER.index("cagr")] = growth
    out[:, ORDER.index("calmar_ratio")] = calmar_ratio(growth,
                                                       out[:, ORDER.index("max_drawdown")])


@njit(cache=True, nogil=True, error_model="numpy")
def _ordered_columns(open_, high, low, close, sized, raw, resize, stop_frac, take_frac,
                     trail_frac, stop_level, take_level, next_open, cost, capital, financing,
                     notional, times, periods, rf_period, keep, kept, out):
    bars, count = close.shape[0], sized.shape[1]
    equity = np.empty(bars)
    held = np.empty(bars)
    work = np.empty(bars)
    trades = np.empty((2 * bars + 2, 11))  # a signal flip and a stop can close two a bar
    slot = 0
    for column in range(count):
        rows = _orders.column(open_, high, low, close, sized, raw, resize, column,
                              stop_frac[column], take_frac[column], trail_frac[column],
                              stop_level, take_level, next_open, cost, capital, financing,
                              notional, equity, held, trades, np.int64(0))
        exposed = 0
        for t in range(bars):
            if held[t] != 0.0:
                exposed += 1
        _measure(close, equity, exposed, trades[:, 6], trades[:, 7], rows, times, capital,
                 periods, rf_period, work, out[column])
        if keep[column]:
            _keep(kept, slot, equity)
            slot += 1


def sweep_metrics(data: pd.DataFrame, targets: np.ndarray, settings: RunSettings,
                  exits: dict[str, np.ndarray] | None = None,
                  keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`metrics` of each column of ``targets`` (all of ``data``'s rows) traded with any
    :func:`fusable` settings, inside their trading window. What the vectorized engine runs
    goes to :func:`metrics`, reading the window's rows in place. Stops, targets and trailing
    stops (``exits``: one fraction per column of any of them, over the settings'), contracts,
    volatility sizing and rebalancing go to the per-bar simulator's own column loop
    (:func:`meridian.engine._orders.column`, the code ``backtest_batch`` runs), each column
    measured as it ends, the window applied as ``backtest_batch`` applies it (after sizing on
    the whole history)."""
    from meridian.engine.backtest import _window_mask, order_inputs

    orders = None
    if exits or not vectorized(settings, data.index):
        window, _, orders = order_inputs(data, targets, settings, exits)
    if orders is None:  # nothing path-dependent (an exit grid of zeros, say): rows in place
        first, stop = 0, len(data)
        if settings.start or settings.end:  # the index is sorted: a window is a run of rows
            inside = np.flatnonzero(_window_mask(data, settings.start or None,
                                                 settings.end or None))
            first, stop = int(inside[0]), int(inside[-1]) + 1
        frame = data.iloc[first:stop]
        return metrics(frame["Open"].to_numpy(), frame["Close"].to_numpy(), frame.index,
                       targets, settings, keep, first)
    bars, count = len(window), targets.shape[1]
    keep = np.zeros(count, dtype=np.bool_) if keep is None else np.asarray(keep, np.bool_)
    kept = np.zeros((bars, int(keep.sum())), dtype=np.float32)
    out = np.full((count, len(ORDER)), np.nan)
    periods = float(settings.periods(window.index))
    _ordered_columns(*_orders.arguments(**orders), *_calendar(window.index, settings, periods),
                     keep, kept, out)
    _power_metrics(out, float(settings.initial_capital), window.index)
    return out, (kept if keep.any() else None)


def _calendar(index: pd.DatetimeIndex, settings: RunSettings,
              periods: float) -> tuple[np.ndarray, float, float]:
    """The bar times (ns), bars a year and the risk-free rate a bar."""
    return (_nanoseconds(index).astype(np.int64), periods,
            _per_period(settings.risk_free_rate, periods))


def cached() -> bool:
    """Whether numba's on-disk cache holds this version of the fused kernel (else a sweep's
    first task compiles it, several seconds once). True when it cannot tell."""
    try:
        return bool(_columns._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - numba's cache internals: never fail a sweep over them
        return True
