"""Many markets, one account: exactness against the single-market engine, P&L that
reconciles bar by bar, calendars, margin, rebalancing, exits per market and no look-ahead."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meridian.api import run_backtest, run_portfolio
from meridian.data import load_sample
from meridian.engine import backtest
from meridian.engine.portfolio import backtest_portfolio
from meridian.exceptions import EngineError
from meridian.settings import RunSettings
from meridian.strategies import get_strategy

SAMPLE = load_sample(with_cot=False)


def sma_position(data: pd.DataFrame, fast: int = 10, slow: int = 30) -> pd.Series:
    return get_strategy("sma_cross").signals(data, fast=fast, slow=slow)


def other_market(seed: int = 3, scale: float = 0.5, drop: float = 0.0) -> pd.DataFrame:
    """A second market: the sample's bars rescaled and shuffled in time blocks, some dropped."""
    rng = np.random.default_rng(seed)
    frame = SAMPLE.copy()
    moves = frame[["Open", "High", "Low", "Close"]].pct_change().fillna(0.0)
    shuffled = moves.iloc[rng.permutation(len(moves))].to_numpy()
    prices = 100.0 * np.cumprod(1.0 + shuffled[:, 3])
    frame["Close"] = prices * scale
    frame["Open"] = frame["Close"].shift(1).fillna(frame["Close"].iloc[0]) * (
        1 + rng.normal(0, 0.002, len(frame)))
    frame["High"] = frame[["Open", "Close"]].max(axis=1) * 1.004
    frame["Low"] = frame[["Open", "Close"]].min(axis=1) * 0.996
    if drop:
        frame = frame[rng.random(len(frame)) >= drop]
    return frame


@pytest.mark.parametrize("options", [
    {},
    {"commission": 0.001, "slippage": 0.0005},
    {"stop_loss": 0.03, "take_profit": 0.08, "trailing_stop": 0.05},
    {"multiplier": 50.0, "tick_size": 0.25, "commission_per_contract": 2.5, "margin": 9000.0},
    {"sizing": "volatility_target", "target_volatility": 0.15, "max_leverage": 2.0},
    {"sizing": "volatility_target", "target_volatility": 0.15, "max_leverage": 3.0,
     "rebalance": "weekly", "financing_rate": 0.05},
    {"fill": "close", "start": "2015-01-01", "end": "2020-12-31"},
])
def test_one_market_equals_the_single_market_engine(options):
    position = sma_position(SAMPLE)
    single = backtest(SAMPLE, position, **options)
    account = {k: v for k, v in options.items() if k not in ("multiplier", "tick_size",
                                                              "commission_per_contract", "margin")}
    account.setdefault("sizing", "equal_weight")
    contract = {k: v for k, v in options.items() if k not in account}
    portfolio = backtest_portfolio({"X": SAMPLE}, {"X": position}, RunSettings.of(account),
                                   contracts={"X": contract})
    np.testing.assert_allclose(portfolio.equity.to_numpy(), single.equity.to_numpy(),
                               rtol=1e-12, atol=1e-9)
    assert portfolio.equity.index.equals(single.equity.index)
    assert len(portfolio.trades) == len(single.trades)
    if "financing_rate" not in options:  # the portfolio charges financing to the trades
        np.testing.assert_allclose(portfolio.trades["pnl"], single.trades["pnl"], rtol=1e-9,
                                   atol=1e-6)



def test_contracts_of_a_rolled_series_are_counted_at_its_unadjusted_price():
    """A back-adjusted series (meridian data roll) carries each contract's own close: both
    engines size whole contracts on it, and agree."""
    rolled = SAMPLE.assign(UnadjustedClose=SAMPLE["Close"] * np.where(
        SAMPLE.index < "2018-01-01", 1.3, 1.0))
    position = sma_position(SAMPLE)
    contract = {"multiplier": 50.0, "tick_size": 0.25}
    single = backtest(rolled, position, **contract)
    unadjusted = backtest(SAMPLE, position, **contract)
    early = single.trades["entry_time"] < "2018-01-01"
    assert (single.trades["contracts"][early] < unadjusted.trades["contracts"][early]).all()
    portfolio = backtest_portfolio({"X": rolled}, {"X": position},
                                   RunSettings.of(sizing="equal_weight"), contracts={"X": contract})
    np.testing.assert_allclose(portfolio.equity.to_numpy(), single.equity.to_numpy(),
                               rtol=1e-12, atol=1e-9)

def test_one_market_universe_equals_run_backtest(tmp_path):
    data = tmp_path / "x.csv"
    SAMPLE.to_csv(data)
    (tmp_path / "one.toml").write_text(f'capital = 250000\n[[market]]\nname = "X"\n'
                                       f'data = "{data}"\n')
    one = run_portfolio("sma_cross", tmp_path / "one.toml", {"fast": 5}, commission=0.0005)
    ref = run_backtest("sma_cross", {"fast": 5}, initial_capital=250_000, data=data,
                       commission=0.0005)
    np.testing.assert_allclose(one.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-12)
    assert one.kind == "portfolio" and one.metrics["num_trades"] == ref.metrics["num_trades"]
    assert one.metrics["sharpe_ratio"] == pytest.approx(ref.metrics["sharpe_ratio"], rel=1e-9)


def three_markets(drop: float = 0.05):
    frames = {"A": SAMPLE, "B": other_market(3, 0.5, drop), "C": other_market(7, 2.0)}
    frames["C"] = frames["C"].loc["2016":]  # starts later
    return frames


@pytest.mark.parametrize("sizing", ["equal_weight", "risk_parity", "volatility_target"])
def test_equity_change_is_the_sum_of_the_markets_pnl_minus_costs(sizing):
    frames = three_markets()
    positions = {name: sma_position(frame) for name, frame in frames.items()}
    settings = RunSettings.of(sizing=sizing, commission=0.0005, slippage=0.0002,
                              financing_rate=0.04, max_leverage=2.0,
                              target_volatility=0.2 if sizing == "volatility_target" else 0.0,
                              stop_loss=0.05)
    result = backtest_portfolio(frames, positions, settings,
                                contracts={"B": {"multiplier": 10.0, "tick_size": 0.01,
                                                 "commission_per_contract": 1.0}})
    equity = result.equity.to_numpy()
    change = np.diff(equity, prepend=settings.initial_capital)
    explained = (result.pnl.sum(axis=1) - result.costs.sum(axis=1)).to_numpy()
    np.testing.assert_allclose(change, explained, rtol=0, atol=1e-6 * settings.initial_capital)
    trades = result.trades
    assert set(trades["market"]) == {"A", "B", "C"}
    assert equity[-1] - settings.initial_capital == pytest.approx(trades["pnl"].sum(), abs=1e-4)
    assert result.costs.to_numpy().sum() > 0
    assert (result.positions.iloc[-1] == 0).all() or result.trades["exit_reason"].iloc[-1] == "end"


def test_markets_trade_only_on_their_own_bars_and_are_marked_at_their_last_close():
    frames = three_markets(drop=0.2)
    positions = {name: sma_position(frame, 3, 8) for name, frame in frames.items()}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="equal_weight"))
    union = result.equity.index
    for name, frame in frames.items():
        mine = result.trades[result.trades["market"] == name]
        assert len(mine) > 10
        assert mine["entry_time"].isin(frame.index).all()
        assert mine["exit_time"].isin(frame.index).all()
    missing = union.difference(frames["B"].index)
    assert len(missing) > 100
    # on B's missing bars its P&L is zero (marked at its last close, nothing traded)
    assert (result.pnl.loc[missing, "B"] == 0).all()
    assert (result.costs.loc[missing, "B"] == 0).all()
    before = union[union < frames["C"].index[0]]
    assert (result.positions.loc[before, "C"] == 0).all()


@pytest.mark.parametrize("sizing", ["risk_parity", "volatility_target"])
def test_no_look_ahead_in_any_market(sizing):
    frames = three_markets()
    settings = RunSettings.of(sizing=sizing, max_leverage=2.0,
                              target_volatility=0.2 if sizing == "volatility_target" else 0.0)
    positions = {name: sma_position(frame) for name, frame in frames.items()}
    result = backtest_portfolio(frames, positions, settings)
    cut = 2500
    cut_time = result.equity.index[cut]
    for changed in frames:
        future = {name: frame.copy() for name, frame in frames.items()}
        later = future[changed].index > cut_time
        future[changed].loc[later, ["Open", "High", "Low", "Close"]] *= np.linspace(
            1.0, 3.0, int(later.sum()))[:, None]
        moved = {name: sma_position(frame) for name, frame in future.items()}
        again = backtest_portfolio(future, moved, settings)
        np.testing.assert_array_equal(result.equity.to_numpy()[:cut + 1],
                                      again.equity.to_numpy()[:cut + 1])


def test_margin_above_equity_cuts_new_exposure_and_is_reported():
    frames = {"A": SAMPLE, "B": other_market(3, 1.0)}
    positions = {name: pd.Series(1.0, index=frame.index) for name, frame in frames.items()}
    contract = {"multiplier": 10.0, "margin": 40_000.0}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="equal_weight"),
                                contracts={"A": contract, "B": contract})
    assert sum(result.margin_blocked.values()) >= 1
    contracts = (result.positions.abs() * result.equity.to_numpy()[:, None]).iloc[5]
    assert contracts.sum() > 0
    held = result.trades.groupby("market")["contracts"].max()
    assert held.sum() * 40_000 <= 100_000 + 1e-9  # 2 contracts at most on 100,000 of equity


def test_rebalancing_resizes_positions_between_signals():
    frames = three_markets()
    positions = {name: pd.Series(np.where(np.arange(len(f)) > 100, 1.0, 0.0), index=f.index)
                 for name, f in frames.items()}
    quiet = backtest_portfolio(frames, positions, RunSettings(sizing="risk_parity"))
    monthly = backtest_portfolio(frames, positions,
                                 RunSettings(sizing="risk_parity", rebalance="monthly"))
    assert (quiet.costs.to_numpy() == 0).all()  # one entry per market, never resized
    assert len(quiet.trades) == 3
    resized = monthly.positions.diff().abs().sum(axis=1)
    assert (resized > 1e-3).sum() > len(quiet.positions) / 40  # about monthly
    assert not np.allclose(quiet.equity, monthly.equity)


def test_risk_parity_weights_are_inverse_volatility():
    calm = SAMPLE.copy()
    wild = SAMPLE.copy()
    swing = wild["Close"].pct_change().fillna(0.0) * 3.0
    wild["Close"] = wild["Close"].iloc[0] * np.cumprod(1.0 + swing.clip(-0.5, 0.5))
    wild["Open"] = wild["Close"].shift(1).bfill()
    wild["High"] = wild[["Open", "Close"]].max(axis=1)
    wild["Low"] = wild[["Open", "Close"]].min(axis=1)
    frames = {"calm": calm, "wild": wild}
    positions = {name: pd.Series(1.0, index=f.index) for name, f in frames.items()}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="risk_parity",
                                                               rebalance="monthly"))
    later = result.positions.iloc[500:]
    ratio = (later["calm"] / later["wild"]).median()
    assert 2.0 < ratio < 4.5  # about three times the weight in the market three times calmer


def test_exits_work_per_market_with_each_markets_own_levels():
    frames = three_markets()
    positions = {name: sma_position(frame) for name, frame in frames.items()}
    levels = {"A": {"stop_loss": frames["A"]["Close"].rolling(5).min()}}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="equal_weight",
                                                               trailing_stop=0.04),
                                levels=levels)
    reasons = result.trades.groupby("market")["exit_reason"].agg(set)
    assert "stop_loss" in reasons["A"] and "stop_loss" not in reasons["B"]
    assert "trailing_stop" in reasons["B"]


def test_bad_engine_input_is_one_line():
    with pytest.raises(EngineError, match="at least one market"):
        backtest_portfolio({}, {})
    with pytest.raises(EngineError, match="indexed differently"):
        backtest_portfolio({"A": SAMPLE}, {"A": pd.Series(1.0, index=SAMPLE.index[:10])})


def test_a_hundred_market_universe_runs():
    frames = {f"M{i}": other_market(i, 1.0 + i / 50) for i in range(100)}
    positions = {name: sma_position(frame) for name, frame in frames.items()}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="volatility_target",
                                                               target_volatility=0.1))
    assert result.positions.shape == (len(SAMPLE), 100)
    assert np.isfinite(result.equity).all() and result.trades["market"].nunique() == 100


def test_analysis_contribution_exposure_margin_and_correlation():
    frames = three_markets()
    positions = {name: sma_position(frame) for name, frame in frames.items()}
    contract = {"multiplier": 10.0, "margin": 2_000.0}
    result = backtest_portfolio(frames, positions, RunSettings(sizing="equal_weight"),
                                contracts={name: contract for name in frames})
    summary = result.market_summary()
    total_return = result.equity.iloc[-1] / 100_000 - 1
    assert summary["return"].sum() == pytest.approx(total_return, rel=1e-9)
    assert summary["contribution"].sum() == pytest.approx(1.0)
    assert summary["trades"].sum() == len(result.trades)
    exposure = result.exposure()
    # new exposure is cut at the open so that margin fits the equity; a loss by the close may
    # leave it above (what a margin call is about), never far above
    assert 0 < exposure["margin"].max() < 1.5 and exposure["margin"].median() <= 1.0
    assert (exposure["gross"] >= exposure["net"].abs() - 1e-12).all()
    correlation = result.correlation()
    assert np.allclose(np.diag(correlation), 1.0) and correlation.shape == (3, 3)


def test_the_portfolio_report_and_its_charts_at_twenty_markets():
    from meridian import viz
    from meridian.api import portfolio_signals

    frames = {f"M{i:02d}": other_market(i, 1.0) for i in range(20)}
    folder = Path(tempfile.mkdtemp())
    lines = []
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index_label="Date")
        lines.append(f'[[market]]\nname = "{name}"\ndata = "{name}.csv"\n')
    (folder / "twenty.toml").write_text("".join(lines))
    record = portfolio_signals(sma_position, {}, folder / "twenty.toml", strategy_name="sma")
    report = viz.report(record, display=False)
    names = [section.name for section in report.sections]
    order = ["equity", "drawdown", "contribution", "market_pnl", "markets", "correlation",
             "exposure", "rolling_sharpe"]
    assert [n for n in names if n in order] == order
    figures = {section.name: section.figure for section in report.sections if section.figure}
    assert figures["equity"].data[1].name == "Buy & hold, equal weight"
    assert len(figures["market_pnl"].data) == 9  # the top 8 and "12 others"
    assert figures["market_pnl"].data[-1].name == "12 others"
    assert figures["correlation"].data[0].z.shape == (20, 20)
    header = report.sections[0].html
    assert "<th>Universe SHA-256</th>" in header and "<th>Market M07</th>" in header
