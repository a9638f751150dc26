"""Universe files: found by name or path, checked before anything runs (one line, exit 2,
nothing written), the shipped SYNTHETIC example, and portfolio runs through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import meridian

from meridian import storage
from meridian.exceptions import UniverseError
from meridian.project import EXAMPLES_DIR
from meridian.universe import load_universe

DATA = EXAMPLES_DIR / "universes" / "data"


def write(folder: Path, text: str, name: str = "u.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def market(name: str, data: str = "999901.csv", extra: str = "") -> str:
    return f'[[market]]\nname = "{name}"\ndata = "{DATA / data}"\n{extra}\n'


@pytest.mark.parametrize(("text", "message"), [
    ("capital = 1000\n", "at least one [[market]]"),
    ('capital = 1000\n[[market]]\nname = "X"\ndata = "missing.csv"\n',
     "market 'X': data file 'missing.csv' not found"),
    (market("ES") + market("es", "999902.csv"), "market name 'es' appears twice"),
    ('sizing = "kelly"\n' + market("ES"), "sizing='kelly' is not a portfolio sizing; use one of "
                                          "equal_weight, risk_parity, volatility_target"),
    ('rebalance = "hourly"\n' + market("ES"), "rebalance='hourly' is not supported"),
    (market("ES", extra="multiplier = 0"), "multiplier must be a positive number, got 0"),
    (market("ES", extra="margin = -5"), "margin must be a positive number, got -5"),
    (market("ES", extra="cot_market = \"GOLD\""), "cot_market='GOLD' needs a cot file"),
    ("multiplier = 50\n" + market("ES"), "contract fields belong in each [[market]]"),
    (market("ES", extra="colour = 1"), "unknown key 'colour'"),
    ("capital = [\n", "is not valid TOML"),
    ('target_volatility = 0.1\n' + market("ES"), "needs sizing='volatility_target'"),
])
def test_bad_universe_files_are_one_line(tmp_path, text, message):
    with pytest.raises(UniverseError) as caught:
        load_universe(write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_cot_market_not_in_the_file_names_the_close_matches(tmp_path):
    path = write(tmp_path, market("GOLD", "999904.csv", f'cot = "{DATA / "cot.csv"}"\n'
                                  'cot_market = "SYN GOLF"'))
    with pytest.raises(UniverseError, match="no market matches 'SYN GOLF'.*close matches: "
                                            "SYN GOLD"):
        load_universe(path).frames()


def test_names_paths_and_relative_files(tmp_path, project):
    universe = load_universe("example")  # the project's copy, made by meridian init
    assert universe.path == project / "universes" / "example.toml"
    assert [m.name for m in universe.markets] == ["EQUITY", "BOND", "CRUDE", "GOLD"]
    assert universe.markets[0].data == project / "universes" / "data" / "999901.csv"
    settings = universe.settings()
    assert settings.initial_capital == 1_000_000 and settings.sizing == "risk_parity"
    assert universe.settings(commission=0.001).commission == 0.001
    (project / "data").mkdir()
    shutil.copy(DATA / "999902.csv", project / "data" / "bond.csv")
    write(project / "universes", market("B", extra="").replace(str(DATA / "999901.csv"),
                                                              "data/bond.csv"), "mine.toml")
    mine = load_universe("mine")  # relative to the project when not beside the file
    assert mine.markets[0].data == project / "data" / "bond.csv"
    with pytest.raises(UniverseError, match="unknown universe 'nope'; available: example, mine"):
        load_universe("nope")


def test_the_shipped_universe_is_synthetic_with_cot_and_different_calendars():
    universe = load_universe(EXAMPLES_DIR / "universes" / "example.toml")
    assert "SYNTHETIC" in universe.path.read_text()
    frames = universe.frames()
    assert len(frames) == 4 and all("COT_Index" in f for f in frames.values())
    lengths = {len(f) for f in frames.values()}
    assert len(lengths) >= 3  # a later start and missing days


def test_cli_backtest_and_bad_universes(tmp_path):
    done = meridian("backtest", "fld", "fld_offset=12", "--universe",
                    str(EXAMPLES_DIR / "universes" / "example.toml"), "--set", "commission=0.0002")
    assert done.returncode == 0, done.stderr
    assert "universe example: EQUITY" in done.stdout and "sharpe_ratio" in done.stdout
    bad = write(tmp_path, 'capital = 1000\n[[market]]\nname = "X"\ndata = "gone.csv"\n')
    failed = meridian("backtest", "fld", "--universe", str(bad))
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().count("\n") == 0 and "gone.csv" in failed.stderr
    both = meridian("backtest", "fld", "--universe", str(bad), "--data", "x.csv")
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_cli_run_records_a_portfolio_run_with_its_universe(tmp_path, outputs):
    home = {"MERIDIAN_HOME": str(outputs)}
    bad = write(tmp_path, market("ES") + market("ES", "999902.csv"))
    refused = meridian("run", "fld", "--universe", str(bad), env=home)
    assert refused.returncode == 2 and "appears twice" in refused.stderr
    assert not (outputs / "runs").exists() or not any((outputs / "runs").iterdir())
    path = EXAMPLES_DIR / "universes" / "example.toml"
    done = meridian("run", "fld", "fld_offset=12", "--universe", str(path), env=home,
                    timeout=600)
    assert done.returncode == 0, done.stderr
    (record,) = storage.load_all_runs(outputs)
    assert record["kind"] == "portfolio" and record["status"] == "success"
    assert record["universe"]["name"] == "example"
    assert len(record["universe"]["sha256"]) == 64
    assert set(record["markets"]) == {"EQUITY", "BOND", "CRUDE", "GOLD"}
    assert record["settings"]["sizing"] == "risk_parity"
    assert record["settings"]["initial_capital"] == 1_000_000  # the universe's, not the notebook's
    run = json.loads((outputs / "runs" / record["run_id"] / "run.json").read_text())
    assert run["universe"]["markets"] == ["EQUITY", "BOND", "CRUDE", "GOLD"]
    report = Path(record["report_path"]).read_text()
    assert "Markets of universe example" in report and "L by market" in report
    assert "market" in (outputs / "runs" / record["run_id"] / "trades.csv").read_text()


def test_a_portfolio_run_reruns_identically_and_with_overrides(outputs):
    from meridian.api import run_portfolio
    from meridian.pipeline.rerun import rerun

    universe = EXAMPLES_DIR / "universes" / "example.toml"
    first = run_portfolio("fld", universe, {"fld_offset": 12})
    storage.save_run(first.to_dict(), outputs)
    again = rerun(first.run_id, output_dir=outputs)
    assert again.identical and again.record["kind"] == "portfolio"
    assert again.record["universe"]["sha256"] == first.universe["sha256"]
    cheaper = rerun(first.run_id, {"commission": 0.001}, output_dir=outputs)
    assert cheaper.record["settings"]["commission"] == 0.001
    assert cheaper.record["metrics"]["final_equity"] < first.metrics["final_equity"]


def test_contract_fields_belong_to_markets(tmp_path):
    from meridian.api import run_portfolio
    from meridian.settings import RunSettings

    universe = load_universe(EXAMPLES_DIR / "universes" / "example.toml")
    notebook = RunSettings(multiplier=50.0, slippage=0.001)  # a single-market notebook's
    settings = universe.settings(notebook)
    assert settings.multiplier == 1.0 and settings.slippage == 0.001
    assert settings.sizing == "risk_parity"
    with pytest.raises(UniverseError, match="multiplier is a contract field"):
        run_portfolio("fld", universe, multiplier=50)


def test_the_portfolio_template_runs_on_its_universe(project):
    made = meridian("new", "basket", "--template", "portfolio", cwd=project)
    assert made.returncode == 0, made.stderr
    text = (project / "notebooks" / "basket.py").read_text()
    assert 'universe = "example"' in text
    done = meridian("run", "basket", "lookback=30", cwd=project, timeout=600)
    assert done.returncode == 0, done.stderr
    (record,) = storage.load_all_runs(project / "outputs")
    assert record["kind"] == "portfolio" and record["universe"]["name"] == "example"
    assert record["params"]["lookback"] == 30
    report = Path(record["report_path"]).read_text()
    for section in ("contribution", "Correlation", "Exposure and margin use"):
        assert section in report
    bad = meridian("run", "basket", "universe=nowhere", cwd=project)
    assert bad.returncode == 2 and "unknown universe 'nowhere'" in bad.stderr
    assert len(storage.load_all_runs(project / "outputs")) == 1  # nothing written
    refused = meridian("new", "other", "--param", "universe=3", cwd=project)
    assert refused.returncode == 2 and "reserved" in refused.stderr


def test_sweep_rows_over_a_universe_equal_run_portfolio(outputs):
    from meridian.api import run_portfolio
    from meridian.strategies import get_strategy, strategy_settings
    from meridian.sweep.run import run_sweep

    universe = EXAMPLES_DIR / "universes" / "example.toml"
    result = run_sweep("sma_cross", ["fast=5,10", "slow=30,60", "commission=0,0.001"],
                       universe=universe, workers=2, output_dir=outputs, progress=False,
                       top=8)
    assert result.completed == 8 and result.status == "success"
    base = strategy_settings(get_strategy("sma_cross"))
    for entry in result.best:
        params = dict(entry["params"])
        commission = params.pop("commission")
        single = run_portfolio("sma_cross", universe, params, settings=base,
                               commission=commission)
        for name in ("sharpe_ratio", "total_return", "final_equity", "num_trades"):
            assert entry["metrics"][name] == single.metrics[name], name
    walked = run_sweep("sma_cross", ["fast=5,10,20"], universe=universe, workers=1,
                       output_dir=outputs, progress=False, walk_forward="750:250")
    stitched = storage.load_run_by_id(walked.walk_forward["run_id"], outputs)
    assert stitched["kind"] == "walk_forward" and stitched["universe"]["name"] == "example"
    refused = meridian("sweep", "sma_cross", "--grid", "fast=5,10", "--universe", str(universe),
                       "--data", "x.csv", env={"MERIDIAN_HOME": str(outputs)})
    assert refused.returncode == 2 and "give no --data" in refused.stderr


def test_two_portfolio_runs_compare(outputs):
    from meridian.api import run_portfolio

    universe = EXAMPLES_DIR / "universes" / "example.toml"
    ids = []
    for sizing in ("equal_weight", "risk_parity"):
        run = run_portfolio("fld", universe, {"fld_offset": 12}, sizing=sizing)
        storage.save_run(run.to_dict(), outputs)
        ids.append(run.run_id)
    done = meridian("runs", "compare", *ids, "--output-dir", str(outputs))
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip().splitlines()[-1].removeprefix("comparison: "))
    text = page.read_text()
    assert all(run_id[:8] in text for run_id in ids)
