"""The per-bar simulator for path-dependent rules: stops, targets, trailing stops, whole
contracts, volatility-scaled sizing, leverage and ruin.

Exits depend on the path of prices inside each bar, so this cannot be a product of fill
factors like :mod:`meridian.engine._simulate`: it walks the bars, for every combination of a
batch (the bars × combinations state of a sweep), in one compiled loop (numba, ``cache=True``;
the first call of a fresh install compiles it in about a second — see ``make bench``).

Rules, bar by bar (``t`` is the bar, ``k`` the combination):

1. **Signal fill.** With ``fill="next_open"`` the target decided at bar t−1's close fills at
   bar t's open; with ``fill="close"`` the target decided at bar t's close fills at that close
   (after step 2). A fill happens when the sized target changes value. After a stop or target
   exit the position stays flat until the target changes value (no instant re-entry).
2. **Exits** of a position open during bar t — live from the entry bar itself when entries
   fill at the open. Levels: the stop is the tightest of the fixed stop (a fraction of the
   entry fill price, or a price level decided at t−1's close), and the trailing stop (a
   fraction from the best price since entry — highest High for a long, lowest Low for a short —
   updated at each close, in effect from the next bar; entry price on the entry bar). The
   target is the nearest of the fixed target (fraction or level). A bar that opens beyond a
   level fills at its Open (a gap); else a Low (High for a short) reaching the stop fills at
   the stop, else a High (Low) reaching the target fills at the target. When one bar reaches
   both, the stop is assumed first (the pessimistic order).
3. **Costs** on every fill, exits included: buys fill at ``price × (1 + slippage)``, sells at
   ``price × (1 − slippage)`` (then rounded to the instrument's tick), ``commission`` is a
   fraction of traded notional and ``per_contract`` a fee per contract traded.
4. **Sizing.** Fraction of equity (units such that notional = exposure × equity after costs,
   as in the vectorized engine), or whole contracts: ``floor(equity × |exposure| /
   (price × multiplier))``, capped by ``equity / margin`` when a margin is given.
5. **Marking** at each close: ``equity = cash + units × close × multiplier``, less financing of
   the borrowed part (``|notional| − equity`` when positive) at ``financing`` per bar.
6. **Ruin.** Equity at or below zero ends trading: the position is closed at that close, equity
   is 0 from then on, and the trade's exit reason is ``ruin``.
7. A position still open after the last bar closes at the last close (reason ``end``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from meridian.engine._jit import njit  # numba, with its cache folder set

REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "end", "ruin")
SIGNAL, STOP, TARGET, TRAIL, END, RUIN = range(6)
# one combination's (or one market's) state, a small array the helpers update in place;
# LAST_FLOW is the cash the latest _trade call moved, COSTS every fee paid so far
CASH, UNITS, CURRENT, ENTRY_PRICE, BEST, ENTRY_BAR, SIZE = range(7)
ADDED_N, ADDED_U, REMOVED_N, REMOVED_U, FLOW, FEES, LAST_FLOW, COSTS = range(7, 15)
STATE_SIZE = 15
# the costs and the instrument: commission, slippage, per contract, multiplier, tick, whole,
# margin
COMMISSION, SLIPPAGE, PER_CONTRACT, MULTIPLIER, TICK, WHOLE, MARGIN = range(7)


@njit(cache=True, error_model="numpy")
def _trade(state, trades, row, k, t, units, price, cost, reason):
    """Trade ``units`` at ``price`` (before slippage): cash, fees and the trade's bookkeeping
    — closing (all of the old position), resizing, or opening (a new one, or the new side of
    a flip). Returns the next free trade row."""
    state[LAST_FLOW] = 0.0
    if units == 0.0:
        return row
    side = 1.0 if units > 0 else -1.0
    multiplier = cost[MULTIPLIER]
    fill = price * (1.0 + side * cost[SLIPPAGE])
    if cost[TICK] > 0.0:
        fill = round(fill / cost[TICK]) * cost[TICK]
    fee = cost[COMMISSION] * abs(units) * fill * multiplier + cost[PER_CONTRACT] * abs(units)
    flow = -units * fill * multiplier - fee
    state[CASH] += flow
    state[LAST_FLOW] = flow
    state[COSTS] += fee
    held = state[UNITS]
    after = held + units
    if held != 0.0 and (after == 0.0 or (after > 0) != (held > 0)):  # closes the trade
        share = abs(held) / abs(units)
        state[REMOVED_N] += abs(held) * fill
        state[REMOVED_U] += abs(held)
        state[FLOW] += flow * share
        state[FEES] += fee * share
        # the closed trade: column, entry and exit bars, signed size, average entry and exit
        # prices, pnl (cash flows, fees included), return on the added notional, fees,
        # reason, contracts
        trades[row, 0], trades[row, 1], trades[row, 2] = k, state[ENTRY_BAR], t
        trades[row, 3] = state[SIZE]
        trades[row, 4] = state[ADDED_N] / state[ADDED_U]
        trades[row, 5] = state[REMOVED_N] / state[REMOVED_U]
        trades[row, 6] = state[FLOW]
        trades[row, 7] = state[FLOW] / (state[ADDED_N] * cost[MULTIPLIER])
        trades[row, 8], trades[row, 9], trades[row, 10] = state[FEES], reason, state[ADDED_U]
        row += 1
        flow, fee = flow * (1.0 - share), fee * (1.0 - share)
        held = 0.0
    if held == 0.0 and after != 0.0:  # opens one
        state[ENTRY_BAR], state[SIZE] = t, after
        state[ADDED_N], state[ADDED_U] = abs(after) * fill, abs(after)
        state[REMOVED_N] = state[REMOVED_U] = 0.0
        state[FLOW], state[FEES] = flow, fee
        state[ENTRY_PRICE] = state[BEST] = fill
    elif held != 0.0:  # resizes it
        if abs(after) > abs(held):
            state[ADDED_N] += abs(units) * fill
            state[ADDED_U] += abs(units)
        else:
            state[REMOVED_N] += abs(units) * fill
            state[REMOVED_U] += abs(units)
        state[FLOW] += flow
        state[FEES] += fee
    state[UNITS] = after
    return row


@njit(cache=True, error_model="numpy")
def _units(state, target, mark, value, cost, max_lots):
    """The units a signal fill aims at: a fraction of equity after costs (the vectorized
    engine's accounting, to the last float), or whole contracts, at most ``max_lots`` (the
    margin's limit)."""
    if not (value > 0.0) or target == 0.0:
        return 0.0
    if cost[WHOLE] > 0.0:
        lots = min(math.floor(value * abs(target) / (mark * cost[MULTIPLIER])), max_lots)
        return math.copysign(max(lots, 0.0), target)
    before = state[UNITS] * mark / value
    side = 1.0 if target > before else -1.0
    rate = cost[SLIPPAGE] + cost[COMMISSION] * (1.0 + side * cost[SLIPPAGE])
    return target * value / mark * (1.0 + side * rate * before) / (1.0 + side * rate * target)


@njit(cache=True, error_model="numpy")
def _exit(state, open_, high, low, stop_frac, take_frac, trail_frac, stop_level, take_level):
    """Where an open position exits during this bar, and why (NaN: it does not). Prices
    times the direction d (+1 long, −1 short), so a stop is hit when d × the bar's worst
    price <= d × stop, whichever side the position is on."""
    d = 1.0 if state[UNITS] > 0 else -1.0
    entry = state[ENTRY_PRICE]
    stop, why = -np.inf, np.int64(STOP)
    if not math.isnan(stop_frac):
        stop = d * entry * (1.0 - d * stop_frac)
    if not math.isnan(stop_level):
        stop = max(stop, d * stop_level)
    trail = d * state[BEST] * (1.0 - d * trail_frac)
    if not math.isnan(trail_frac) and trail > stop:
        stop, why = trail, np.int64(TRAIL)
    take = np.inf
    if not math.isnan(take_frac):
        take = d * entry * (1.0 + d * take_frac)
    if not math.isnan(take_level):
        take = min(take, d * take_level)
    opening = d * open_
    price = np.nan
    if opening <= stop:  # a gap through the stop: the open
        price = d * opening
    elif opening >= take:
        price, why = d * opening, np.int64(TARGET)
    elif (low if d > 0 else -high) <= stop:  # the stop first when the bar reaches both
        price = d * stop  # (the pessimistic order)
    elif (high if d > 0 else -low) >= take:
        price, why = d * take, np.int64(TARGET)
    return price, why


@njit(cache=True, error_model="numpy")
def _track_best(state, t, high, low, next_open):
    """The trailing stop's best price since entry, at the close (the range after the entry)."""
    units = state[UNITS]
    if units != 0.0 and (next_open or state[ENTRY_BAR] != t):
        state[BEST] = max(state[BEST], high) if units > 0 else min(state[BEST], low)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def column(open_, high, low, close, sized, raw, resize, k, stop_frac, take_frac, trail_frac,
           stop_level, take_level, next_open, cost, capital, financing, notional, equity, held,
           trades, count):
    """Combination ``k`` (column k of ``sized`` and ``raw``, its exit fractions, its column of
    the levels or their only one): its equity and exposure at each close into ``equity`` and
    ``held`` (one value per bar), its closed trades into ``trades`` from row ``count`` on.
    Returns the next free row. Inlined into its callers: compiled on its own it added 0.3 s
    to the simulator's first compile."""
    bars = close.shape[0]
    multiplier = cost[MULTIPLIER]
    state = np.zeros(STATE_SIZE)
    state[CASH] = capital
    ruined, blocked, blocked_value = False, False, 0.0
    sl_col = min(k, stop_level.shape[1] - 1)
    tp_col = min(k, take_level.shape[1] - 1)
    for t in range(bars):
        if ruined:
            equity[t] = held[t] = 0.0
            continue
        for phase in range(2):
            if (phase == 0) == next_open:  # next_open fills at the open, close at the close
                # the signal's fill: to the sized target, unless a stop or target exit left
                # the position flat and the target itself has not changed since
                target = sized[t, k]
                if blocked and raw[t, k] != blocked_value:
                    blocked = False
                if blocked:
                    target = 0.0
                if target != state[CURRENT] or (resize[t] and target != 0.0):
                    mark = open_[t] if phase == 0 else close[t]
                    value = state[CASH] + state[UNITS] * mark * multiplier
                    wanted = _units(state, target, mark * notional[t], value, cost,
                                    math.floor(value / cost[MARGIN]) if cost[MARGIN] > 0.0
                                    else np.inf)
                    count = _trade(state, trades, count, k, t, wanted - state[UNITS], mark,
                                   cost, np.int64(SIGNAL))
                    state[CURRENT] = target
            if phase == 1 or state[UNITS] == 0.0:
                continue  # exits: while the bar's range is ahead, with a position
            # (live from the entry bar when entries fill at the open)
            price, why = _exit(state, open_[t], high[t], low[t], stop_frac, take_frac,
                               trail_frac, stop_level[t, sl_col], take_level[t, tp_col])
            if not math.isnan(price):
                count = _trade(state, trades, count, k, t, -state[UNITS], price, cost, why)
                state[CURRENT] = 0.0
                blocked, blocked_value = True, raw[t, k]
        # the close: the trailing stop's best price, financing, marking, ruin
        units = state[UNITS]
        _track_best(state, t, high[t], low[t], next_open)
        value = state[CASH] + units * close[t] * multiplier
        borrowed = abs(units * close[t] * multiplier) - value
        if financing > 0.0 and borrowed > 0.0:
            state[CASH] -= borrowed * financing
            value -= borrowed * financing
        if value <= 0.0:  # ruin: liquidated at this close, no more trading
            count = _trade(state, trades, count, k, t, -units, close[t], cost, np.int64(RUIN))
            ruined, value = True, 0.0
            state[UNITS] = state[CASH] = 0.0
        equity[t] = value
        held[t] = units * close[t] * multiplier / value if value > 0 else 0.0
    # a position still open after the last bar closes at the last close
    if state[UNITS] != 0.0 and not ruined:
        count = _trade(state, trades, count, k, bars - 1, -state[UNITS], close[bars - 1],
                       cost, np.int64(END))
        equity[bars - 1] = max(state[CASH], 0.0)
    return count


@njit(cache=True, error_model="numpy")
def _simulate(open_, high, low, close, sized, raw, resize, stop_frac, take_frac, trail_frac,
              stop_level, take_level, next_open, cost, capital, financing, notional):
    bars, columns = sized.shape
    equity = np.zeros((bars, columns))
    held = np.zeros((bars, columns))
    trades = np.empty((bars * columns + columns, 11))
    count = np.int64(0)  # a typed variable, not a literal: one compiled version of each helper
    for k in range(columns):
        count = column(open_, high, low, close, sized, raw, resize, k, stop_frac[k],
                       take_frac[k], trail_frac[k], stop_level, take_level, next_open, cost,
                       capital, financing, notional, equity[:, k], held[:, k], trades, count)
    return equity, held, trades[:count]


_compile_seconds: float | None = None


def compile_seconds() -> float | None:
    """How long the first call of this process took to compile (or load from the cache)."""
    return _compile_seconds


def fill_targets(target: np.ndarray, scale: np.ndarray, next_open: bool,
                 rebalance: np.ndarray | None = None):
    """What each bar's signal fill aims at: the sized target (exposure × the sizing scale of
    the latest sizing moment, :func:`~meridian.engine.sizing.hold`), the raw target (for "no
    re-entry until the target changes") and whether the fill re-sizes an unchanged target (a
    rebalance), bars × combinations. With ``next_open`` bar t fills what bar t−1's close
    decided; with ``close``, bar t's own, except on the last bar (a position opened at the last
    close would close at the same price)."""
    from meridian.engine.sizing import hold

    bars = len(target)
    rebalance = np.zeros(bars, dtype=bool) if rebalance is None else rebalance
    decided = hold(target, scale, rebalance)
    raw, sized, resize = np.zeros_like(target), np.zeros_like(target), np.zeros(bars, bool)
    if next_open:
        raw[1:], sized[1:], resize[1:] = target[:-1], decided[:-1], rebalance[:-1]
        return sized, raw, resize
    raw[:], sized[:], resize[:] = target, decided, rebalance
    if bars > 1:
        raw[-1], sized[-1], resize[-1] = raw[-2], sized[-2], False
    return sized, raw, resize


def simulate(open_, high, low, close, target, scale, stop_frac, take_frac, trail_frac,
             stop_level, take_level, *, next_open, commission, slippage, per_contract,
             multiplier, tick, whole, margin, capital, financing, rebalance=None,
             notional=None):
    """Run the compiled simulator (arguments as in the module docstring); returns equity and
    exposure (bars × combinations) and the closed trades (one row each). ``notional`` (per
    bar, default 1) converts a price into the price contracts are counted at: a back-adjusted
    series' ``UnadjustedClose / Close``, so whole contracts are sized on the real price."""
    global _compile_seconds
    started = time.perf_counter()
    result = _simulate(*arguments(
        open_, high, low, close, target, scale, stop_frac, take_frac, trail_frac, stop_level,
        take_level, next_open=next_open, commission=commission, slippage=slippage,
        per_contract=per_contract, multiplier=multiplier, tick=tick, whole=whole, margin=margin,
        capital=capital, financing=financing, rebalance=rebalance, notional=notional))
    if _compile_seconds is None:
        _compile_seconds = time.perf_counter() - started
    return result


def arguments(open_, high, low, close, target, scale, stop_frac, take_frac, trail_frac,
              stop_level, take_level, *, next_open, commission, slippage, per_contract,
              multiplier, tick, whole, margin, capital, financing, rebalance=None,
              notional=None) -> tuple:
    """:func:`simulate`'s arguments as the compiled loop takes them (the sweep's fused pass
    runs :func:`column` on the same ones). The targets stay column by column (Fortran
    order, as the engine holds them): the loop reads one combination's bars at a time, and a
    C-ordered copy of each would double a sweep task's memory."""
    cost = np.array([commission, slippage, per_contract, multiplier, tick, 1.0 if whole else 0.0,
                     margin], dtype=np.float64)
    sized, raw, resize = fill_targets(np.asarray(target, dtype=np.float64),
                                      np.asarray(scale, dtype=np.float64), next_open, rebalance)
    as_float = lambda values: np.ascontiguousarray(values, dtype=np.float64)  # noqa: E731
    by_column = lambda values: np.asfortranarray(values, dtype=np.float64)  # noqa: E731
    return (as_float(open_), as_float(high), as_float(low), as_float(close), by_column(sized),
            by_column(raw), resize, as_float(stop_frac), as_float(take_frac),
            as_float(trail_frac), as_float(stop_level), as_float(take_level), bool(next_open),
            cost, float(capital), float(financing),
            as_float(np.ones(len(close)) if notional is None else notional))
