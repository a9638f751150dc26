"""RunSettings: one declaration of every run setting, read by the engine, the API, notebooks,
sweeps and reruns — and sweeps whose every row equals run_backtest with the same settings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import meridian

from meridian.api import run_backtest
from meridian.engine import Instrument, backtest
from meridian.exceptions import EngineError, ParameterError, SettingError
from meridian.settings import NAMES, RANGES, RunSettings
from meridian.strategies import get_strategy
from meridian.sweep.run import run_sweep

FUTURES = {"multiplier": 50.0, "tick_size": 0.25, "commission_per_contract": 2.5,
           "sizing": "volatility_target", "target_volatility": 0.15, "max_leverage": 2.0}


def _same(a, b) -> bool:
    """The same float, or both undefined: a fused sweep's sums are numpy's own."""
    if (a is None or math.isnan(a)) and (b is None or math.isnan(b)):
        return True
    return a == b


def test_each_setting_is_declared_once_with_its_type_range_and_doc():
    settings = RunSettings()
    assert settings.initial_capital == 100_000.0 and settings.fill == "next_open"
    assert set(RANGES) < set(NAMES) and RANGES["commission"] == "[0, 0.5)"
    assert RunSettings.of({"multiplier": "50", "sizing": "volatility_target",
                           "target_volatility": "0.15"}).multiplier == 50.0
    contract = RunSettings.of(instrument=Instrument(50, 0.25, 2.5, 5000))
    assert contract.instrument == Instrument(50, 0.25, 2.5, 5000)
    assert RunSettings().instrument is None
    changed = settings.replace(commission=0.001, stop_loss=0.05)
    assert changed.changed() == {"commission": 0.001, "stop_loss": 0.05}
    assert changed.recorded() == {"initial_capital": 100_000.0, "commission": 0.001,
                                  "slippage": 0.0, "fill": "next_open", "stop_loss": 0.05}
    assert RunSettings(start=pd.Timestamp("2020-01-02")).start == "2020-01-02 00:00:00"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shares": 1}, "unknown run setting 'shares'; valid settings: initial_capital, "
                        "commission"),
        ({"multiplier": "fifty"}, "'multiplier' of the run settings expects float"),
        ({"commission": 0.7}, "commission=0.7 is out of range for the run settings: it must "
                              "lie in [0, 0.5)"),
        ({"fill": "open"}, "fill='open' is not supported; use one of next_open, close"),
        ({"sizing": "volatility_target"}, "needs target_volatility"),
        ({"target_volatility": 0.1}, "target_volatility=0.1 needs sizing='volatility_target'"),
        ({"start": "2020-02-30"}, "start='2020-02-30' is not a date"),
        ({"periods_per_year": -1}, "periods_per_year=-1.0 is out of range"),
    ],
)
def test_a_bad_setting_is_one_line_naming_what_is_right(values, message):
    with pytest.raises(SettingError) as error:
        RunSettings.of(values)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, ParameterError) and isinstance(error.value, EngineError)


def test_periods_per_year_and_risk_free_rate_reach_the_metrics():
    weekly = run_backtest("sma_cross", periods_per_year=52)
    daily = run_backtest("sma_cross")
    assert weekly.settings["periods_per_year"] == 52.0
    assert weekly.metrics["total_return"] == daily.metrics["total_return"]
    ratio = weekly.metrics["volatility"] / daily.metrics["volatility"]
    assert ratio == pytest.approx(math.sqrt(52 / 252), rel=0.02)
    riskless = run_backtest("sma_cross", risk_free_rate=0.05)
    assert riskless.metrics["sharpe_ratio"] < daily.metrics["sharpe_ratio"]


def test_the_engine_takes_one_settings_object_or_keywords_alike():
    data = pd.DataFrame({"Open": [100.0, 101, 102, 103, 104], "High": [101.0, 102, 103, 104, 105],
                         "Low": [99.0, 100, 101, 102, 103], "Close": [100.0, 101, 102, 103, 104]},
                        index=pd.date_range("2024-01-01", periods=5))
    position = pd.Series(1.0, index=data.index)
    settings = RunSettings(commission=0.001, multiplier=2.0)
    by_object = backtest(data, position, settings)
    by_keywords = backtest(data, position, commission=0.001, multiplier=2.0)
    assert list(by_object.equity) == list(by_keywords.equity)
    assert by_object.settings is settings


@pytest.fixture(scope="module")
def futures_sweep(tmp_path_factory):
    """A sweep of fld as a futures contract with volatility sizing, over the FLD-line stop."""
    out = tmp_path_factory.mktemp("settings") / "outputs"
    result = run_sweep("fld", ["fld_offset=8:14:2", "fld_stop=True,False"], workers=2,
                       settings=FUTURES, output_dir=out, progress=False, top=3)
    return out, result


def test_every_sweep_row_equals_run_backtest_with_the_same_settings(futures_sweep):
    out, result = futures_sweep
    assert result.status == "success" and len(result.table) == 8
    for _, row in result.table.iterrows():
        params = {"fld_offset": int(row["fld_offset"]), "fld_stop": bool(row["fld_stop"])}
        single = run_backtest("fld", params, **FUTURES)
        assert all(_same(row[name], value) for name, value in single.metrics.items()), params
    stopped = result.table[result.table["fld_stop"]]
    unstopped = result.table[~result.table["fld_stop"]]
    assert not np.array_equal(stopped["total_return"], unstopped["total_return"])
    plain = run_backtest("fld", {"fld_offset": 10})
    assert plain.metrics["total_return"] != run_backtest("fld", {"fld_offset": 10},
                                                         **FUTURES).metrics["total_return"]


def test_the_sweep_records_its_settings(futures_sweep):
    from meridian.registry.sweeps import load_sweep

    out, result = futures_sweep
    info = load_sweep(result.sweep_id, out)
    assert info["settings"]["multiplier"] == 50.0
    assert info["settings"]["sizing"] == "volatility_target"


def test_a_grid_may_vary_settings_and_each_row_still_equals_run_backtest(tmp_path):
    result = run_sweep("fld", ["fld_offset=10,12", "multiplier=1,50", "stop_loss=0,0.03"],
                       workers=1, settings={"tick_size": 0.25}, output_dir=tmp_path / "out",
                       progress=False, top=2)
    assert result.status == "success" and len(result.table) == 8
    for _, row in result.table.iterrows():
        settings = {"multiplier": float(row["multiplier"]), "stop_loss": float(row["stop_loss"]),
                    "tick_size": 0.25}
        single = run_backtest("fld", {"fld_offset": int(row["fld_offset"])}, **settings)
        assert all(_same(row[name], value) for name, value in single.metrics.items()), settings
    assert result.table["total_return"].nunique() == 8


def test_a_combination_whose_settings_conflict_fails_alone(tmp_path):
    result = run_sweep("sma_cross", ["fast=5,10", "sizing=fixed_fraction,volatility_target"],
                       workers=1, output_dir=tmp_path / "out", progress=False)
    assert result.status == "partial" and result.failed == 2
    assert "needs target_volatility" in result.first_error


def test_a_notebooks_own_settings_are_its_sweeps_default(project, tmp_path):
    notebook = project / "notebooks" / "fld.py"
    text = notebook.read_text()
    assert "\nmultiplier = 1.0 " in text
    notebook.write_text(text.replace("\nmultiplier = 1.0 ", "\nmultiplier = 50.0 ")
                        .replace("\ncommission = 0.0 ", "\ncommission = 0.0005 "))
    extracted = meridian("extract", "notebooks/fld.py", cwd=project)
    assert extracted.returncode == 0, extracted.stderr
    module = get_strategy("fld")
    assert module.SETTINGS["multiplier"] == 50.0 and module.SETTINGS["commission"] == 0.0005
    result = run_sweep("fld", ["fld_offset=9,11"], workers=1, output_dir=tmp_path / "out",
                       progress=False)
    for _, row in result.table.iterrows():
        single = run_backtest("fld", {"fld_offset": int(row["fld_offset"])}, multiplier=50.0,
                              commission=0.0005)
        assert all(_same(row[name], value) for name, value in single.metrics.items())
    backtested = meridian("backtest", "fld", "fld_offset=9", cwd=project)
    assert backtested.returncode == 0, backtested.stderr
    overridden = run_sweep("fld", ["fld_offset=9"], workers=1, settings={"multiplier": 1.0},
                           output_dir=tmp_path / "out", progress=False)
    plain = run_backtest("fld", {"fld_offset": 9}, commission=0.0005)
    assert _same(overridden.table["total_return"][0], plain.metrics["total_return"])


def test_extract_refuses_a_parameters_cell_setting_the_engine_would_refuse(project):
    module = project / "strategies" / "fld.py"
    before = module.read_text()  # meridian init extracted the example
    notebook = project / "notebooks" / "fld.py"
    notebook.write_text(notebook.read_text().replace("\ncommission = 0.0 ", "\ncommission = 0.9 "))
    extracted = meridian("extract", "notebooks/fld.py", cwd=project)
    assert extracted.returncode == 2
    assert "commission=0.9 is out of range" in extracted.stderr
    assert len(extracted.stderr.strip().splitlines()) == 1
    assert module.read_text() == before  # nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "shares=1"], "unknown run setting 'shares'; valid settings: initial_capital"),
        (["--set", "multiplier=big"], "'multiplier' of the run settings expects float"),
        (["--set", "commission=0.7"], "commission=0.7 is out of range"),
        (["--set", "multiplier"], "--set 'multiplier': use NAME=VALUE"),
        (["--set", "sizing=volatility_target"], "needs target_volatility"),
        (["--grid", "start=2020-01-01,2021-01-01"], "the trading window cannot vary per "
                                                    "combination"),
    ],
)
def test_cli_bad_settings_are_one_line_before_any_work(args, message, tmp_path):
    grid = [] if "--grid" in args else ["--grid", "fld_offset=5,6"]
    result = meridian("sweep", "fld", *grid, *args, "--output-dir", str(tmp_path / "outputs"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "outputs" / "sweeps").exists()


def test_cli_sweep_with_set_equals_run_backtest(tmp_path):
    result = meridian("sweep", "fld", "--grid", "fld_offset=8,10", "--set", "multiplier=50",
                      "--set", "sizing=volatility_target", "--set", "target_volatility=0.15",
                      "--workers", "1", "--output-dir", str(tmp_path / "outputs"))
    assert result.returncode == 0, result.stderr
    from meridian.registry.sweeps import list_sweeps
    from meridian.sweep.store import read_results

    (info,) = list_sweeps(tmp_path / "outputs")
    rows = read_results(tmp_path / "outputs", info["sweep_id"])
    for _, row in rows.iterrows():
        single = run_backtest("fld", {"fld_offset": int(row["fld_offset"])}, multiplier=50,
                              sizing="volatility_target", target_volatility=0.15)
        assert _same(row["sharpe_ratio"], single.metrics["sharpe_ratio"])


def test_an_api_run_reruns_with_its_settings_and_its_form_shows_them(outputs):
    from meridian.dashboard.reruns import form
    from meridian.pipeline.rerun import rerun
    from meridian.storage import load_run_by_id, save_run

    original = run_backtest("fld", {"fld_offset": 12}, multiplier=50.0, tick_size=0.25)
    save_run(original.to_dict(), outputs)
    same = rerun(original.run_id, output_dir=outputs)
    assert same.identical and same.record["settings"]["multiplier"] == 50.0
    assert same.record["changed"] == []
    fields = {f["name"]: f for f in form(load_run_by_id(original.run_id, outputs))["params"]}
    assert fields["multiplier"]["value"] == "50.0" and fields["fld_offset"]["value"] == "12"
    assert fields["sizing"]["value"] == "fixed_fraction"
    assert fields["commission"]["range"] == "[0, 0.5)"
    edited = rerun(original.run_id, {"multiplier": 20.0, "fld_offset": 14}, output_dir=outputs)
    assert edited.record["settings"]["multiplier"] == 20.0
    assert edited.record["params"]["fld_offset"] == 14
    assert edited.record["changed"] == ["fld_offset"]
    expected = run_backtest("fld", {"fld_offset": 14}, multiplier=20.0, tick_size=0.25)
    assert edited.record["metrics"] == expected.metrics


def test_meridian_run_takes_a_setting_the_notebook_does_not_declare(outputs):
    ran = meridian("run", "sma_cross", "-p", "sizing", "volatility_target", "-p",
                   "target_volatility", "0.15", "--output-dir", str(outputs))
    assert ran.returncode == 0, ran.stderr
    from meridian.storage import load_all_runs

    (record,) = load_all_runs(outputs)
    assert record["settings"]["sizing"] == "volatility_target"
    assert record["settings"]["target_volatility"] == 0.15
    assert record["params"]["sizing"] == "volatility_target"  # given: recorded and highlighted
    assert "financing_rate" not in record["params"] and "sizing" in record["changed"]
    expected = run_backtest("sma_cross", sizing="volatility_target", target_volatility=0.15)
    assert record["metrics"]["sharpe_ratio"] == expected.metrics["sharpe_ratio"]
    refused = meridian("run", "sma_cross", "-p", "sizing", "kelly", "--output-dir", str(outputs))
    assert refused.returncode == 2 and "sizing='kelly' is not supported" in refused.stderr
    assert len(load_all_runs(outputs)) == 1  # refused before any kernel: nothing recorded
