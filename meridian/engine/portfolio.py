"""Many markets, one equity: :func:`backtest_portfolio`.

Each market has its own bars and its own target exposure (decided at each of its closes, as
in :func:`~meridian.engine.backtest.backtest`); one account holds them all. Bar by bar, on the
union of the markets' dates:

1. **Sizing** (:mod:`meridian.engine.sizing`): a market's sized target is its exposure × its
   weight (``equal_weight``, ``risk_parity``, ``volatility_target``), taken when its target
   changes (``rebalance="on_signal"``) or also at each day's, week's or month's last close.
   With ``fill="next_open"`` it fills at that market's next open. The units come from the
   portfolio's equity valued at this bar's opens (a market without a bar today at its last
   close): a fraction of equity after costs, or whole contracts for a market with a contract.
2. **Margin**: reductions fill first; a market's margin per contract × contracts held, summed
   over markets, may not exceed equity: an order that would breach it is cut to what fits
   (counted in ``margin_blocked``).
3. **Exits**: stops and targets (fractions, or each market's own price levels) work per market,
   exactly as in the single-market engine (:mod:`meridian.engine._orders`).
4. **Marking** at the closes; a market without a bar that day is marked at its last close and
   does not trade. Financing of the borrowed part (gross notional − equity) is charged to the
   markets in proportion to their notional. Equity at or below zero liquidates everything.
5. A market's position still open at its last bar closes at that close (reason ``end``), so
   final equity − capital is the sum of the trades' P&L, costs and financing included.

A universe of one market gives exactly ``backtest`` on that market with the same settings
(``equal_weight`` is all of the equity for one market): the same operations in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from meridian.engine._orders import (
    CASH,
    COSTS,
    CURRENT,
    END,
    FLOW,
    LAST_FLOW,
    MARGIN,
    MULTIPLIER,
    RUIN,
    SIGNAL,
    STATE_SIZE,
    UNITS,
    _exit,
    _track_best,
    _trade,
    _units,
)
from meridian.engine._simulate import Simulation
from meridian.engine._trades import TradeArrays, trades_from_rows
from meridian.engine.backtest import (
    EngineResult,
    _check_data,
    _fractions,
    _levels,
    _window_mask,
    as_positions,
    contract_notional,
)
from meridian.engine.sizing import hold, realized_volatility, rebalance_moments, weights
from meridian.exceptions import EngineError
from meridian.settings import EXITS, LEVELS, RunSettings


@njit(cache=True, error_model="numpy")
def _portfolio(open_, high, low, close, has, last_bar, sized, raw, resize, stop_frac,
               take_frac, trail_frac, stop_level, take_level, next_open, cost, capital,
               financing, contract_price):
    bars, markets = sized.shape
    equity = np.zeros(bars)
    held = np.zeros((bars, markets))
    value_of = np.zeros((bars, markets))  # each market's cumulative P&L, marked
    costs_of = np.zeros((bars, markets))  # each market's cumulative fees and financing
    margin_used = np.zeros(bars)  # margin of the positions held after each bar's close
    blocked_orders = np.zeros(markets, dtype=np.int64)
    trades = np.empty((2 * bars * markets + markets, 11))
    count = np.int64(0)
    state = np.zeros((markets, STATE_SIZE))
    last = np.full(markets, np.nan)  # each market's latest close
    pending = np.zeros(markets, dtype=np.bool_)  # a rebalance waits for the market's bar
    blocked = np.zeros(markets, dtype=np.bool_)  # flat after an exit until the target changes
    blocked_value = np.zeros(markets)
    cash = capital
    ruined = False
    for t in range(bars):
        if ruined:
            for i in range(markets):
                value_of[t, i], costs_of[t, i] = value_of[t - 1, i], costs_of[t - 1, i]
            continue
        if resize[t]:
            pending[:] = True
        for phase in range(2):
            if (phase == 0) == next_open:  # the signal fills: reductions first, then the rest
                value = cash
                used = 0.0
                for i in range(markets):
                    units = state[i, UNITS]
                    if units != 0.0:
                        mark = last[i]
                        if has[t, i]:
                            mark = open_[t, i] if phase == 0 else close[t, i]
                        value += units * mark * cost[i, MULTIPLIER]
                        used += abs(units) * cost[i, MARGIN]
                for step in range(2):
                    for i in range(markets):
                        if not has[t, i]:
                            continue
                        target = sized[t, i]
                        if blocked[i] and raw[t, i] != blocked_value[i]:
                            blocked[i] = False
                        if blocked[i]:
                            target = 0.0
                        if not (target != state[i, CURRENT] or (pending[i] and target != 0.0)):
                            continue
                        mark = open_[t, i] if phase == 0 else close[t, i]
                        units = state[i, UNITS]
                        room = np.inf
                        if cost[i, MARGIN] > 0.0:
                            free = value - (used - abs(units) * cost[i, MARGIN])
                            room = math.floor(free / cost[i, MARGIN])
                        mark_size = mark * contract_price[t, i]  # a contract's own price
                        wanted = _units(state[i], target, mark_size, value, cost[i], room)
                        shrinks = wanted == 0.0 or (
                            (wanted > 0) == (units > 0) and abs(wanted) <= abs(units))
                        if shrinks != (step == 0):
                            continue
                        if room != np.inf and abs(wanted) < abs(
                                _units(state[i], target, mark_size, value, cost[i], np.inf)):
                            blocked_orders[i] += 1
                        count = _trade(state[i], trades, count, i, t, wanted - units, mark,
                                       cost[i], np.int64(SIGNAL))
                        cash += state[i, LAST_FLOW]
                        used += (abs(wanted) - abs(units)) * cost[i, MARGIN]
                        state[i, CURRENT] = target
                        pending[i] = False
                for i in range(markets):
                    if has[t, i]:
                        pending[i] = False
            if phase == 1:
                continue
            for i in range(markets):  # exits, while the bar's range is ahead
                if not has[t, i] or state[i, UNITS] == 0.0:
                    continue
                price, why = _exit(state[i], open_[t, i], high[t, i], low[t, i], stop_frac[i],
                                   take_frac[i], trail_frac[i], stop_level[t, i],
                                   take_level[t, i])
                if not math.isnan(price):
                    count = _trade(state[i], trades, count, i, t, -state[i, UNITS], price,
                                   cost[i], why)
                    cash += state[i, LAST_FLOW]
                    state[i, CURRENT] = 0.0
                    blocked[i], blocked_value[i] = True, raw[t, i]
        # the closes: best prices, marking, financing, ruin
        value = cash
        gross = 0.0
        for i in range(markets):
            if has[t, i]:
                last[i] = close[t, i]
                _track_best(state[i], t, high[t, i], low[t, i], next_open)
            units = state[i, UNITS]
            if units != 0.0:
                notional = units * last[i] * cost[i, MULTIPLIER]
                value += notional
                gross += abs(notional)
        borrowed = gross - value
        if financing > 0.0 and borrowed > 0.0:
            charge = borrowed * financing
            cash -= charge
            value -= charge
            for i in range(markets):
                if state[i, UNITS] == 0.0:
                    continue
                share = charge * abs(state[i, UNITS] * last[i] * cost[i, MULTIPLIER]) / gross
                state[i, CASH] -= share
                state[i, FLOW] -= share
                state[i, COSTS] += share
        if value <= 0.0:  # ruin: everything liquidated at these closes, no more trading
            for i in range(markets):
                if state[i, UNITS] != 0.0:
                    count = _trade(state[i], trades, count, i, t, -state[i, UNITS], last[i],
                                   cost[i], np.int64(RUIN))
                    state[i, UNITS] = 0.0
            ruined, value, cash = True, 0.0, 0.0
        equity[t] = value
        for i in range(markets):
            units = state[i, UNITS]
            if units != 0.0 and value > 0:
                held[t, i] = units * last[i] * cost[i, MULTIPLIER] / value
                margin_used[t] += abs(units) * cost[i, MARGIN]
        closing = False  # a market's position still open at its last bar closes there
        for i in range(markets):
            if last_bar[i] == t and state[i, UNITS] != 0.0 and not ruined:
                count = _trade(state[i], trades, count, i, t, -state[i, UNITS], close[t, i],
                               cost[i], np.int64(END))
                cash += state[i, LAST_FLOW]
                closing = True
        if closing:
            value = cash
            for i in range(markets):
                if state[i, UNITS] != 0.0:
                    value += state[i, UNITS] * last[i] * cost[i, MULTIPLIER]
            equity[t] = max(value, 0.0)
        for i in range(markets):
            value_of[t, i] = state[i, CASH]
            if state[i, UNITS] != 0.0:
                value_of[t, i] += state[i, UNITS] * last[i] * cost[i, MULTIPLIER]
            costs_of[t, i] = state[i, COSTS]
    return equity, held, value_of, costs_of, blocked_orders, trades[:count], margin_used


@dataclass(frozen=True, eq=False)
class PortfolioResult:
    """What a portfolio backtest produced, on the union of the markets' dates.

    ``engine`` measures the whole account (its metrics are the portfolio's: every trade of
    every market counts); ``positions`` is each market's exposure (fraction of equity) after
    each bar; ``pnl`` each market's P&L per bar before costs and ``costs`` its fees and
    financing per bar, so ``equity.diff() == pnl.sum(axis=1) − costs.sum(axis=1)``;
    ``margin_blocked`` how many orders of each market the margin limit cut."""

    engine: EngineResult
    markets: tuple[str, ...]
    held: np.ndarray
    value_of: np.ndarray
    costs_of: np.ndarray
    trade_market: np.ndarray
    margin_blocked: dict[str, int]
    close: np.ndarray  # each market's closes on the union of dates (NaN: no bar)
    margin_used: np.ndarray  # margin of the positions held after each close

    def _frame(self, values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, index=self.engine.index, columns=list(self.markets))

    @cached_property
    def positions(self) -> pd.DataFrame:
        return self._frame(self.held)

    @cached_property
    def costs(self) -> pd.DataFrame:
        return self._frame(np.diff(self.costs_of, axis=0, prepend=0.0))

    @cached_property
    def pnl(self) -> pd.DataFrame:
        net = np.diff(self.value_of, axis=0, prepend=0.0)
        return self._frame(net + self.costs.to_numpy())

    @property
    def settings(self) -> RunSettings:
        return self.engine.settings

    @property
    def equity(self) -> pd.Series:
        return self.engine.equity

    @property
    def drawdown(self) -> pd.Series:
        return self.engine.drawdown

    @property
    def returns(self) -> pd.Series:
        return self.engine.returns

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Every market's closed trades in the order they closed, with a ``market`` column."""
        frame = self.engine.trades
        frame.insert(0, "market", np.asarray(self.markets, dtype=object)[self.trade_market])
        return frame

    def market_summary(self) -> pd.DataFrame:
        """One row per market:

        * ``trades``, ``win_rate`` (share of its trades with ``pnl > 0``), ``pnl`` (net of
          its costs) and ``costs`` (fees and financing);
        * ``contribution``: its share of the total net P&L (``pnl_i / Σ pnl``);
        * ``return``: its P&L as a fraction of the initial capital (``pnl_i / E_0``; they
          sum to the total return);
        * ``sharpe``: ``mean(p) / std(p) × sqrt(P)`` of its daily net P&L ``p_t`` divided by
          the equity before the bar (its contribution to the bar's return);
        * ``exposure``: share of bars with a position; ``margin_blocked``: orders the
          margin limit cut."""
        trades = self.trades
        net = self.pnl.sum() - self.costs.sum()
        total = float(net.sum())
        grouped = trades.groupby("market")
        wins = grouped["pnl"].apply(lambda pnl: float((pnl > 0).mean()))
        capital = self.engine.initial_capital
        before = np.concatenate([[capital], self.engine.sim.equity[:-1, 0]])
        with np.errstate(divide="ignore", invalid="ignore"):
            daily = (self.pnl - self.costs).to_numpy() / before[:, None]
            deviation = daily.std(axis=0, ddof=1)
            sharpe = np.where(deviation > 0, daily.mean(axis=0) / deviation, np.nan) * \
                np.sqrt(self.settings.periods(self.engine.index))
        return pd.DataFrame({
            "trades": grouped.size().reindex(self.markets, fill_value=0),
            "win_rate": wins.reindex(self.markets),
            "pnl": net, "costs": self.costs.sum(),
            "contribution": net / total if total else np.nan,
            "return": net / capital, "sharpe": pd.Series(sharpe, index=list(self.markets)),
            "exposure": pd.Series((self.held != 0).mean(axis=0), index=list(self.markets)),
            "margin_blocked": pd.Series(self.margin_blocked),
        }, index=pd.Index(self.markets, name="market"))

    def exposure(self) -> pd.DataFrame:
        """Per bar, as fractions of equity: ``gross`` (Σ|exposure|), ``net`` (Σ exposure)
        and ``margin`` (margin of the positions held / equity)."""
        equity = self.engine.sim.equity[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            margin = np.where(equity > 0, self.margin_used / equity, 0.0)
        return pd.DataFrame({"gross": np.abs(self.held).sum(axis=1),
                             "net": self.held.sum(axis=1), "margin": margin},
                            index=self.engine.index)

    def correlation(self) -> pd.DataFrame:
        """Correlation of the markets' close-to-close returns (each on its own bars; pairs
        over the dates both have)."""
        closes = pd.DataFrame(self.close, index=self.engine.index, columns=list(self.markets))
        returns = pd.DataFrame({name: closes[name].dropna().pct_change()
                                for name in self.markets})
        return returns.corr(min_periods=20)


def backtest_portfolio(
    frames: Mapping[str, pd.DataFrame],
    positions: Mapping[str, Any],
    settings: RunSettings | None = None,
    *,
    contracts: Mapping[str, Mapping[str, float]] | None = None,
    levels: Mapping[str, Mapping[str, pd.Series]] | None = None,
    **options: Any,
) -> PortfolioResult:
    """Trade each market's ``positions`` (target exposure per bar of its own frame, decided at
    its close) from one account with ``settings`` (the account's
    :class:`~meridian.settings.RunSettings`; ``sizing`` shares equity across the markets).
    ``contracts`` gives a market's contract fields (multiplier, tick_size,
    commission_per_contract, margin), ``levels`` its price-level exits (``{"stop_loss":
    Series}`` on its own bars). See the module docstring for the rules."""
    settings = RunSettings.of(settings, **options)
    names = tuple(frames)
    if not names:
        raise EngineError("a portfolio needs at least one market")
    for name in names:
        _check_data(frames[name])
    index = frames[names[0]].index
    for name in names[1:]:
        own = frames[name].index
        if (own.tz is None) != (index.tz is None):
            raise EngineError(f"market {name!r}: its dates are time-zone "
                              f"{'aware' if own.tz else 'naive'}, "
                              f"{names[0]!r}'s are not; use one kind for every market")
        if not (own is index or own.equals(index)):
            index = index.union(own)
    bars, count = len(index), len(names)
    shape = (bars, count)
    open_, high, low, close, raw = (np.full(shape, np.nan) for _ in range(5))
    contract_price = np.ones(shape)  # over the traded price: contract_notional
    stop_level, take_level = np.full(shape, np.nan), np.full(shape, np.nan)
    has = np.zeros(shape, dtype=bool)
    exits = {}
    for exit_name in EXITS:
        value = getattr(settings, exit_name)
        exits[exit_name] = np.full(count, _fractions(
            exit_name, None if isinstance(value, pd.Series) else value, 1)[0])
    fractions_set = any(not np.isnan(v[0]) for v in exits.values())
    costs, whole = np.zeros((count, 7)), []
    calendars: dict[int, tuple[pd.DatetimeIndex, np.ndarray, list[int]]] = {}
    for i, name in enumerate(names):
        frame = frames[name]
        known = next((key for key, (own, _, _) in calendars.items()
                      if own is frame.index or own.equals(frame.index)), None)
        if known is None:
            known = len(calendars)
            row = slice(None) if len(frame.index) == len(index) else \
                index.get_indexer(frame.index)  # the union itself, or where its bars sit
            calendars[known] = (frame.index, row, [])
        own, row, members = calendars[known]
        members.append(i)
        has[row, i] = True
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):  # a text column beside the prices
            values = None
        for array, column in ((open_, "Open"), (high, "High"), (low, "Low"), (close, "Close")):
            where = frame.columns.get_loc(column if column in frame.columns else "Close")
            array[row, i] = values[:, where] if values is not None else \
                frame.iloc[:, where].to_numpy(dtype=float)
        raw[row, i] = as_positions(positions[name], own)
        instrument = _instrument(tuple(sorted(dict((contracts or {}).get(name, {})).items())))
        whole.append(instrument is not None)
        if instrument is not None:
            instrument.check_prices(close[row, i])
            contract_price[row, i] = contract_notional(frame)
        costs[i] = (settings.commission, settings.slippage,
                    instrument.commission_per_contract if instrument else 0.0,
                    instrument.multiplier if instrument else 1.0,
                    instrument.tick_size if instrument else 0.0,
                    1.0 if instrument else 0.0, (instrument.margin or 0.0) if instrument else 0.0)
        given = dict((levels or {}).get(name, {}))
        for level_name, array in zip(LEVELS, (stop_level, take_level), strict=True):
            if given.get(level_name) is not None:
                array[row, i] = _levels(f"market {name!r}: {level_name}", given[level_name],
                                        own)[:, 0]
        needs_range = fractions_set or given
        if needs_range and not {"High", "Low"} <= set(frame.columns):
            raise EngineError(f"market {name!r}: stops and targets need High and Low columns")
    vol, returns = np.full(shape, np.nan), np.full(shape, np.nan)
    if settings.sizing in ("risk_parity", "volatility_target"):
        for own, row, members in calendars.values():  # one pass per calendar
            place = (row, members) if isinstance(row, slice) else np.ix_(row, members)
            prices = close[place]
            vol[place] = realized_volatility(prices, settings.periods(own))
            if settings.sizing == "volatility_target":  # for the markets' correlations
                returns[place] = pd.DataFrame(prices).pct_change().to_numpy()
    raw = np.nan_to_num(forward_filled(raw), nan=0.0)  # no bar: the target stands
    vol = forward_filled(vol)
    weight = weights(vol, returns, settings.sizing, settings.target_volatility,
                     settings.max_leverage)
    rebalance = rebalance_moments(index, settings.rebalance)
    if settings.start or settings.end:
        keep = _window_mask(pd.DataFrame(index=index), settings.start or None,
                            settings.end or None)
        index, rebalance = index[keep], rebalance[keep]
        open_, high, low, close, raw, weight, has, stop_level, take_level, contract_price = (
            a[keep] for a in (open_, high, low, close, raw, weight, has, stop_level,
                              take_level, contract_price))
        bars = len(index)
    last_bar = np.where(has.any(axis=0), len(has) - 1 - has[::-1].argmax(axis=0), -1)
    decided = hold(raw, weight, rebalance)
    next_open = settings.fill == "next_open"
    sized, fill_raw, resize = np.zeros_like(raw), np.zeros_like(raw), np.zeros(bars, bool)
    if next_open:
        sized[1:], fill_raw[1:], resize[1:] = decided[:-1], raw[:-1], rebalance[:-1]
    else:
        sized[:], fill_raw[:], resize[:] = decided, raw, rebalance
        if bars > 1:
            sized[-1], fill_raw[-1], resize[-1] = sized[-2], fill_raw[-2], False
    periods = settings.periods(index)
    equity, held, value_of, costs_of, margin_cuts, trade_rows, margin_used = _portfolio(
        *(np.ascontiguousarray(a) for a in (open_, high, low, close)), has, last_bar, sized,
        fill_raw, resize, exits["stop_loss"], exits["take_profit"], exits["trailing_stop"],
        np.ascontiguousarray(stop_level), np.ascontiguousarray(take_level), next_open, costs,
        float(settings.initial_capital), settings.financing_rate / periods,
        np.ascontiguousarray(contract_price))
    return _result(index, names, settings, equity, held, value_of, costs_of, margin_cuts,
                   trade_rows, close, all(whole), margin_used)


@lru_cache(maxsize=1024)
def _instrument(contract: tuple[tuple[str, float], ...]):
    """A market's :class:`~meridian.engine.instrument.Instrument` from its contract fields
    (checked as run settings), None without any; cached, as sweeps ask again and again."""
    return RunSettings.of(dict(contract)).instrument if contract else None


def _result(index, names, settings, equity, held, value_of, costs_of, margin_cuts, rows,
            close, whole, margin_used) -> PortfolioResult:
    order = np.lexsort((rows[:, 0], rows[:, 2])) if len(rows) else np.arange(0)
    rows = rows[order]
    market = rows[:, 0].astype(np.int64)
    rows[:, 0] = 0  # the account's metrics count every market's trades as one list
    trade_arrays: TradeArrays = trades_from_rows(rows, whole)
    with np.errstate(invalid="ignore", divide="ignore"):
        seen = ~np.isnan(close)
        first = close[seen.argmax(axis=0), np.arange(len(names))]
        benchmark = np.nanmean(forward_filled(close / first), axis=1)
    gross = np.abs(held).sum(axis=1)
    event = np.zeros((len(index), 1), dtype=bool)
    sim = Simulation(equity[:, None], gross[:, None], event, equity[:, None])
    engine = EngineResult(index, benchmark, float(settings.initial_capital), sim,
                          trade_arrays, settings)
    return PortfolioResult(
        engine=engine, markets=names, held=held, value_of=value_of, costs_of=costs_of,
        trade_market=market, close=close, margin_used=margin_used,
        margin_blocked={name: int(n) for name, n in zip(names, margin_cuts, strict=True)})


@njit(cache=True)
def forward_filled(values: np.ndarray) -> np.ndarray:
    """Each column's NaN replaced by its latest earlier value (NaN before the first)."""
    filled = values.copy()
    for t in range(1, filled.shape[0]):
        for k in range(filled.shape[1]):
            if math.isnan(filled[t, k]):
                filled[t, k] = filled[t - 1, k]
    return filled
