"""``%%backtest`` in a real IPython InteractiveShell, and in a notebook under papermill."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from meridian.api import run_backtest
from meridian.pipeline.execute import execute
from meridian.pipeline.export import export_html
from meridian.pipeline.notebooks import read_notebook
from meridian.storage import load_all_runs

ROOT = Path(__file__).resolve().parents[1]
# The strategy cell of notebooks/fld.py itself: the magic must agree with the module it became.
FLD_CELL = next(cell.source for cell in read_notebook(ROOT / "notebooks" / "fld.py").cells
                if "export" in cell.metadata.get("tags", []))


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A real InteractiveShell with the extension loaded and its own output directory."""
    monkeypatch.setenv("MERIDIAN_HOME", str(tmp_path / "outputs"))
    instance = InteractiveShell.instance()
    instance.run_line_magic("load_ext", "meridian")
    instance.user_ns.pop("_backtest", None)
    yield instance
    instance.user_ns.pop("signals", None)


def _run(shell, line: str, cell: str):
    return shell.run_cell_magic("backtest", line, cell)


def test_parameters_come_from_the_source_and_param_overrides(shell, tmp_path):
    _run(shell, "--param fld_offset=15 --name fld-cell", FLD_CELL)
    result = shell.user_ns["_backtest"]
    assert result.params == {"fld_offset": 15, "cot_threshold": 0.0, "allow_short": True}
    assert result.status == "success" and result.strategy_name == "fld-cell"
    (saved,) = load_all_runs(tmp_path / "outputs")
    assert saved["run_id"] == result.run_id and saved["kind"] == "magic"
    assert saved["name"] == "fld-cell" and saved["source"] == FLD_CELL
    assert saved["params"]["fld_offset"] == 15 and saved["metrics"]["num_trades"] > 0
    assert (tmp_path / "outputs" / "index.html").is_file()  # shows up in the dashboard


def test_metrics_equal_run_backtest_on_the_fld_module(shell):
    _run(shell, "--param fld_offset=12 --param cot_threshold=0.2 --no-save", FLD_CELL)
    cell = shell.user_ns["_backtest"].metrics
    module = run_backtest("fld", {"fld_offset": 12, "cot_threshold": 0.2}).metrics
    assert all(cell[k] == v or (math.isnan(cell[k]) and math.isnan(v))
               for k, v in module.items())


def test_cell_uses_the_users_namespace_and_no_save_saves_nothing(shell, tmp_path):
    shell.run_cell("import pandas as pd\nLOOKBACK = 7")
    cell = ("from meridian.indicators import cross_state, sma\n"
            "def signals(data, fast=LOOKBACK_DEFAULT):\n    pass\n")
    with pytest.raises(UsageError, match="default must be a literal"):
        _run(shell, "", cell)
    cell = ("from meridian.indicators import cross_state, sma\n"
            "def signals(data, fast=5):\n"
            "    return pd.Series(cross_state(data['Close'], sma(data['Close'], LOOKBACK)),"
            " index=data.index)\n")
    _run(shell, "--no-save", cell)
    assert shell.user_ns["_backtest"].params == {"fast": 5}
    assert load_all_runs(tmp_path / "outputs") == []


def test_use_namespace_takes_the_notebooks_data_and_settings(shell, tmp_path):
    from meridian.data import load_market_data

    data, _ = load_market_data("", "", "")
    shell.user_ns.update(data=data.iloc[:1500], commission=0.001, initial_capital=50_000.0,
                         stop_loss=0.05)
    _run(shell, "--use-namespace --kind cell --notebook notebooks/fld.py --cell-index 4 "
                "--name fld fld_offset=17", FLD_CELL)
    result = shell.user_ns["_backtest"]
    assert result.kind == "cell" and result.data["bars"] == 1500
    assert result.settings["commission"] == 0.001 and result.settings["stop_loss"] == 0.05
    assert result.settings["initial_capital"] == 50_000.0
    assert result.code["notebook"] == "notebooks/fld.py" and result.code["cell_index"] == 4
    assert result.code["cell_sha256"] == hashlib.sha256(FLD_CELL.encode()).hexdigest()
    # an option on the line still wins over the namespace
    _run(shell, "--use-namespace --commission 0 --no-save", FLD_CELL)
    assert shell.user_ns["_backtest"].settings["commission"] == 0.0
    (saved,) = load_all_runs(tmp_path / "outputs")
    assert saved["kind"] == "cell" and saved["params"]["fld_offset"] == 17
    for name in ("data", "commission", "initial_capital", "stop_loss"):
        shell.user_ns.pop(name)


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("", "def signals(data, x=1):\n    return data[\n", "syntax error in the cell, line 2"),
        ("", "x = 1\n", "the cell defines no `def signals(data, ...)`"),
        ("", "def signals(data, x=1):\n    raise RuntimeError('boom')\n",
         "signals failed: RuntimeError: boom"),
        ("", "def signals(data, x=1):\n    return [1, 2, 3]\n",
         "signals failed: EngineError: position has shape (3,)"),
        ("", "def signals(data, x=1):\n    return data['Close'] * 0 + 5\n",
         "signals failed: EngineError: position at bar 0"),
        ("", "raise ValueError('top-level')\ndef signals(data):\n    pass\n",
         "the cell raised ValueError: top-level"),
        ("--param y=2", "def signals(data, x=1):\n    pass\n",
         "--param 'y' is not a parameter of signals; its parameters: x"),
        ("--param x=abc", "def signals(data, x=1):\n    pass\n", "'x' of signals expects int"),
    ],
    ids=["syntax", "no-signals", "raises", "not-aligned", "out-of-range", "cell-raises",
         "unknown-param", "bad-type"],
)
def test_bad_cells_give_a_short_error_and_save_nothing(shell, tmp_path, line, cell, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")) as error:
        _run(shell, line, cell)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)
    assert load_all_runs(tmp_path / "outputs") == []
    assert "_backtest" not in shell.user_ns


def test_errors_show_in_the_cell_output_without_a_traceback(shell, capsys):
    shell.run_cell("%%backtest\ndef signals(data, x=1):\n    raise RuntimeError('boom')\n")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError: signals failed: RuntimeError: boom" in text
    assert "Traceback" not in text


def test_debug_shows_the_full_traceback(shell):
    with pytest.raises(RuntimeError, match="top"):
        _run(shell, "--debug", "raise RuntimeError('top')\ndef signals(data):\n    pass\n")


def test_a_notebook_using_the_magic_runs_under_papermill_with_an_inline_chart(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MERIDIAN_HOME", str(tmp_path / "outputs"))
    source = Path(__file__).parent / "notebooks" / "backtest_magic.py"
    executed = tmp_path / "magic.ipynb"
    assert execute(read_notebook(source), executed, {}) is None
    html = export_html(nbformat.read(executed, as_version=4), tmp_path / "magic.html").read_text()
    assert "Plotly.newPlot" in html and "Sharpe" in html
    (run,) = load_all_runs(tmp_path / "outputs")
    assert run["name"] == "magic-notebook" and run["params"] == {"fld_offset": 12}


def test_set_takes_any_run_setting_and_a_bad_one_is_one_line(shell):
    _run(shell, "--set multiplier=50 --set tick_size=0.25 --param fld_offset=12 --no-save",
         FLD_CELL)
    cell = shell.user_ns["_backtest"]
    assert cell.settings["multiplier"] == 50.0 and cell.settings["tick_size"] == 0.25
    module = run_backtest("fld", {"fld_offset": 12}, multiplier=50, tick_size=0.25)
    assert cell.metrics["total_return"] == module.metrics["total_return"]
    with pytest.raises(UsageError, match="unknown run setting 'shares'; valid settings: "):
        _run(shell, "--set shares=3 --no-save", FLD_CELL)


def test_a_bad_data_frame_in_the_namespace_is_one_line(shell, tmp_path):
    from meridian.data import load_market_data

    data, _ = load_market_data("", "", "")
    shell.user_ns["data"] = data.iloc[::-1]
    with pytest.raises(UsageError, match=r"data row 1 \(.*\): the index runs newest first") \
            as error:
        _run(shell, "--use-namespace", FLD_CELL)
    assert "\n" not in str(error.value)
    assert load_all_runs(tmp_path / "outputs") == []
    shell.user_ns.pop("data")


def test_a_text_parameter_survives_the_line_the_ui_writes(shell):
    """Run as Backtest quotes values as POSIX shell words (label='hello' → 'label='"'"'…');
    the magic reads them back as the same values."""
    from meridian.pipeline.session import magic_line

    cell = ("import pandas as pd\n"
            "def signals(data, label='x', note='a b', count=1):\n"
            "    return pd.Series(1.0, index=data.index)\n")
    line = magic_line(name="demo", notebook="notebooks/demo.py", cell_index=3,
                      params={"label": "hello", "note": "it's \"quoted\" text", "count": 4})
    _run(shell, line.removeprefix("%%backtest ") + " --no-save", cell)
    result = shell.user_ns["_backtest"]
    assert result.params == {"label": "hello", "note": "it's \"quoted\" text", "count": 4}
    assert result.code["notebook"] == "notebooks/demo.py"
